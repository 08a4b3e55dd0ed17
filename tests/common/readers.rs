//! The independent MCAP readers (PyPI `mcap`, `mcap-ros2-support`, `rosbags`) behind
//! `tests/peers/read_mcap.py`.

use super::server::skip;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

/// Every message of `file` decoded by the Foxglove app's ROS 2 decoders
/// (tests/peers/node/decode_ros2.mjs, beside the Foxglove client `client`), with the schema
/// text its channel names: per topic, in file order, the decoded messages in the shape
/// `read_mcap.py` prints them, numbers as floats ([`numbers_as_f64`]). A message Foxglove
/// cannot decode fails the test.
pub fn decode_with_foxglove(client: &Path, file: &Path) -> BTreeMap<String, Vec<Value>> {
    let bytes = std::fs::read(file).unwrap();
    let mut requests = String::new();
    for message in mcap::MessageStream::new(&bytes).unwrap().map(|m| m.unwrap()) {
        let schema = message.channel.schema.as_ref().expect("a schema");
        let request = serde_json::json!({
            "topic": message.channel.topic,
            "schema": String::from_utf8(schema.data.to_vec()).expect("a ros2msg text"),
            "data": hex(&message.data),
        });
        requests.push_str(&format!("{request}\n"));
    }
    let mut child = Command::new("node")
        .arg(client.with_file_name("decode_ros2.mjs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node decode_ros2.mjs");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(requests.as_bytes()));
    let output = child.wait_with_output().expect("decode_ros2.mjs output");
    writer.join().unwrap().expect("write to decode_ros2.mjs");
    assert!(
        output.status.success(),
        "decode_ros2.mjs failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut topics: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let answer: Value = serde_json::from_str(line).expect("decode_ros2.mjs prints JSON");
        assert!(answer.get("error").is_none(), "Foxglove's decoders: {answer}");
        let topic = answer["topic"].as_str().unwrap().to_string();
        topics.entry(topic).or_default().push(numbers_as_f64(&answer["decoded"]));
    }
    topics
}

/// `value` with every number as a float: JavaScript prints the float 1.0 as `1`, Python as
/// `1.0`, and decoded messages from both are compared.
pub fn numbers_as_f64(value: &Value) -> Value {
    match value {
        Value::Number(number) => number.as_f64().map_or(Value::Null, Value::from),
        Value::Array(items) => Value::Array(items.iter().map(numbers_as_f64).collect()),
        Value::Object(fields) => {
            Value::Object(fields.iter().map(|(k, v)| (k.clone(), numbers_as_f64(v))).collect())
        }
        other => other.clone(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
