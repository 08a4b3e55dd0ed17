//! The real ROS 2 (rclpy from the PyPI wheels, scripts/setup-ros2.sh) as a test peer: its
//! publisher (tests/peers/ros2_publisher.py), and what it published compared with a recording.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `tests/peers/` script run by the ROS 2 venv's `python`, in a ROS environment of its own
/// (whatever the test process inherited).
pub fn peer(python: &Path, script: &str) -> Command {
    peer_in(Command::new(python), python, script)
}

/// [`peer`], run by `command`: `python` itself, or a program that runs it (see [`sourced`]).
pub fn peer_in(mut command: Command, python: &Path, script: &str) -> Command {
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

/// `program` run by a shell that sourced a colcon workspace's `install/setup.bash`, as a user
/// runs it: the workspace's packages join the ament index, library path and Python path.
pub fn sourced(setup: &Path, program: &Path) -> Command {
    let mut command = Command::new("bash");
    command.args(["-c", r#"source "$0" && exec "$@""#]).arg(setup).arg(program);
    command
}

/// The ROS 2 venv python, or `None` after a loud skip.
pub fn python(test: &str) -> Option<PathBuf> {
    super::venv_python(test, "DTBRIDGE_ROS2_PYTHON", "ros2-venv", "scripts/setup-ros2.sh")
}

/// Runs ros2_reference.py on `request` and returns its JSON answer.
pub fn reference(python: &Path, request: &Value) -> Value {
    reference_in(peer(python, "ros2_reference.py"), request)
}

/// [`reference`] with the command [`peer_in`] made for `ros2_reference.py`.
pub fn reference_in(mut command: Command, request: &Value) -> Value {
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

/// A ROS domain of this test's own, so that parallel runs do not meet.
pub fn domain_id(offset: u32) -> u32 {
    10 + (std::process::id() % 100) * 2 + offset
}

/// The rclpy publisher with `args` (`--seconds N`: how long it streams, 6 s by default),
/// started; returns once it has published its first messages.
pub fn start_publisher(python: &Path, domain_id: u32, args: &[&str]) -> Child {
    start_publisher_in(peer(python, "ros2_publisher.py"), domain_id, args)
}

/// [`start_publisher`] with the command [`peer_in`] made for `ros2_publisher.py`.
pub fn start_publisher_in(mut command: Command, domain_id: u32, args: &[&str]) -> Child {
    let mut child = command
        .args(args)
        .env("ROS_DOMAIN_ID", domain_id.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ros2_publisher.py");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let started = Instant::now();
    while line.trim() != "ready" {
        line.clear();
        let read = stderr.read_line(&mut line).unwrap();
        assert!(read > 0, "ros2_publisher.py ended before it was ready");
        assert!(started.elapsed() < Duration::from_secs(60), "ros2_publisher.py never ready");
        eprint!("ros2_publisher.py: {line}");
    }
    // Keep draining its stderr so that it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    child
}

/// Tells the publisher to stream, waits for it to finish, and returns what it published.
pub fn stream_and_collect(mut child: Child) -> BTreeMap<String, Vec<Value>> {
    writeln!(child.stdin.take().unwrap(), "go").unwrap();
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    assert!(child.wait().unwrap().success(), "ros2_publisher.py failed");
    serde_json::from_str(&stdout).expect("ros2_publisher.py prints JSON")
}

/// colcon from its venv (scripts/setup-colcon.sh), or `None` after a loud skip.
pub fn colcon(test: &str) -> Option<PathBuf> {
    super::venv_program(test, "DTBRIDGE_COLCON", "colcon-venv", "colcon", "scripts/setup-colcon.sh")
}

/// Once `recorder` has recorded the publisher's latched topic `latched` (so the bridge has
/// found the topics and the recorder subscribed to the tracks), lets the publisher stream and
/// returns what it published, leaving the last messages time to arrive.
pub fn stream_once_recording(
    publisher: Child,
    recorder: &super::process::Process,
    latched: &str,
) -> BTreeMap<String, Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(90);
    while super::process::recorded_so_far(&recorder.log(), latched) == 0 {
        assert!(Instant::now() < deadline, "nothing recorded in 90 s:\n{}", recorder.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let published = stream_and_collect(publisher);
    std::thread::sleep(Duration::from_secs(2));
    published
}

/// The decoded messages of each topic in the recording, in order.
pub fn recorded(seen: &Value) -> BTreeMap<String, Vec<Value>> {
    let mut topics: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for message in seen["messages"].as_array().expect("messages") {
        assert!(message.get("decode_error").is_none(), "mcap-ros2-support: {message}");
        let topic = message["topic"].as_str().unwrap().to_string();
        topics.entry(topic).or_default().push(message["decoded"].clone());
    }
    topics
}

/// `recorded` is `published` from some message on, without a gap, to the end; returns how
/// many published messages came before the first recorded one.
pub fn assert_suffix(topic: &str, published: &[Value], recorded: &[Value]) -> usize {
    assert!(!recorded.is_empty(), "{topic}: nothing recorded");
    let first = published
        .iter()
        .position(|m| *m == recorded[0])
        .unwrap_or_else(|| panic!("{topic}: the first recorded message was never published"));
    let expected = &published[first..];
    if let Some(i) = (0..expected.len().min(recorded.len())).find(|&i| expected[i] != recorded[i]) {
        let actual = published.iter().position(|m| *m == recorded[i]);
        panic!(
            "{topic}: recorded message {i} should be published message {}, it is {actual:?}:\n{}\n{}",
            first + i,
            recorded[i],
            expected[i]
        );
    }
    assert_eq!(
        recorded.len(),
        expected.len(),
        "{topic}: {} of the {} messages published from the first recorded on were recorded",
        recorded.len(),
        expected.len()
    );
    first
}
