//! The real ROS 2 (rclpy from the PyPI wheels, scripts/setup-ros2.sh) as a test peer.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// A `tests/peers/` script run by the ROS 2 venv's `python`, in a ROS environment of its own
/// (whatever the test process inherited).
pub fn peer(python: &Path, script: &str) -> Command {
    let mut command = Command::new(python);
    command
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers").join(script))
        .env("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        .env("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
        // Let the wheels' bootstrapper compute LD_LIBRARY_PATH for this venv.
        .env_remove("_ROS_WHEELS_BOOTSTRAP_COMPLETE");
    // The venv is the ROS prefix; don't let an unrelated AMENT_PREFIX_PATH win.
    if let Some(prefix) = python.parent().and_then(|bin| bin.parent())
        && prefix.join("share/ament_index").is_dir()
    {
        command.env("AMENT_PREFIX_PATH", prefix);
    }
    command
}

/// The ROS 2 venv python, or `None` after a loud skip.
pub fn python(test: &str) -> Option<PathBuf> {
    super::venv_python(test, "DTBRIDGE_ROS2_PYTHON", "ros2-venv", "scripts/setup-ros2.sh")
}

/// Runs ros2_reference.py on `request` and returns its JSON answer.
pub fn reference(python: &Path, request: &Value) -> Value {
    let mut command = peer(python, "ros2_reference.py");
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().expect("spawn ros2_reference.py");
    let input = serde_json::to_vec(request).expect("request JSON");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("ros2_reference.py output");
    writer.join().expect("writer thread").expect("write request");
    assert!(
        output.status.success(),
        "ros2_reference.py failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("ros2_reference.py answered in {:?}", started.elapsed());
    serde_json::from_slice(&output.stdout).expect("ros2_reference.py JSON")
}
