//! The independent MCAP readers (PyPI `mcap`, `mcap-ros2-support`, `rosbags`) behind
//! `tests/peers/read_mcap.py`.

use super::server::skip;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The venv python with the readers, or `None` after a loud skip (a failure in CI).
pub fn python(test: &str) -> Option<PathBuf> {
    let path = super::venv_python(test, "DTBRIDGE_PYTHON", "venv", "scripts/setup-python.sh")?;
    let probe = Command::new(&path)
        .args(["-c", "import mcap, mcap_ros2, rosbags"])
        .output()
        .expect("run python");
    if !probe.status.success() {
        skip(test, &format!("{} lacks mcap/mcap-ros2-support/rosbags", path.display()));
        return None;
    }
    Some(path)
}

/// What `read_mcap.py` prints for `file`.
pub fn read_mcap(python: &Path, file: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/read_mcap.py");
    let out = Command::new(python).arg(script).arg(file).output().expect("run read_mcap.py");
    assert!(
        out.status.success(),
        "read_mcap.py {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("read_mcap.py prints JSON")
}

/// The messages of `topic` in `file`, read with the `mcap` crate: (publish time, data).
pub fn messages(file: &Path, topic: &str) -> Vec<(u64, Vec<u8>)> {
    let bytes = std::fs::read(file).unwrap();
    mcap::MessageStream::new(&bytes)
        .unwrap()
        .map(|m| m.unwrap())
        .filter(|m| m.channel.topic == topic)
        .map(|m| (m.publish_time, m.data.to_vec()))
        .collect()
}

/// The log times (receive times, UNIX ns) of the messages of `topic` in `file`, in file order.
pub fn log_times(file: &Path, topic: &str) -> Vec<u64> {
    let bytes = std::fs::read(file).unwrap();
    mcap::MessageStream::new(&bytes)
        .unwrap()
        .map(|m| m.unwrap())
        .filter(|m| m.channel.topic == topic)
        .map(|m| m.log_time)
        .collect()
}

/// How many channels of `file` carry `topic`.
pub fn channel_count(file: &Path, topic: &str) -> usize {
    let bytes = std::fs::read(file).unwrap();
    let summary = mcap::Summary::read(&bytes).unwrap().expect("a finished file has a summary");
    summary.channels.values().filter(|c| c.topic == topic).count()
}
