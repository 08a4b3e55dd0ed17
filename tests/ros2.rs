//! The `ros2` source end to end on a real ROS 2 graph: rclpy publishers
//! (`tests/peers/ros2_publisher.py`, PyPI Kilted wheels) -> `dtbridge run` (r2r) -> a real
//! livekit-server -> `dtbridge record` -> MCAP, read back by independent readers and compared
//! with what rclpy published. Needs `--features ros2` and scripts/ros2-env.sh's environment
//! (scripts/test.sh provides both), and runs in scripts/netns-run.sh's namespace.

#![cfg(feature = "ros2")]

mod common;

use common::process::{Process, recorded_file, run_summary, write_operator_config};
use common::readers::read_mcap;
use common::ros2::{assert_suffix, domain_id, recorded, start_publisher, stream_and_collect};
use common::server::{TempDir, TestServer};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Topics published reliably throughout: none of their messages may be lost once the
/// operator records.
const RELIABLE: [&str; 4] = ["/chatter", "/imu", "/pose", "/camera/image"];

/// The bridge's configuration: every topic but the denied ones, raw images zstd-compressed,
/// the color topic re-encoded to JPEG.
fn robot_config(domain_id: u32) -> String {
    format!(
        "[livekit]\nroom = \"ros\"\nidentity = \"robot\"\n\n\
         [[sources]]\ntype = \"ros2\"\nname = \"ros\"\ndomain_id = {domain_id}\n\
         deny = [\"/secret/**\", \"/rosout\", \"/parameter_events\"]\n\
         discovery_interval_s = 0.5\nlatched_resend_s = 2\n\n\
         [[routes]]\ntopic = \"/camera/color/image_raw\"\nimage_format = \"jpeg\"\n\n\
         [[routes]]\ntopic = \"/camera/image\"\ncompression = \"zstd\"\nqueue_depth = 16\n\n\
         [[routes]]\ntopic = \"/**\"\nqueue_depth = 512\n"
    )
}

/// The schema text of each recorded channel, read with the `mcap` crate.
fn schemas(file: &Path) -> BTreeMap<String, (String, String)> {
    let bytes = std::fs::read(file).unwrap();
    let summary = mcap::Summary::read(&bytes).unwrap().expect("a summary");
    summary
        .channels
        .values()
        .map(|channel| {
            let schema = channel.schema.as_ref().expect("a schema");
            let text = String::from_utf8(schema.data.to_vec()).unwrap();
            (channel.topic.clone(), (schema.name.clone(), text))
        })
        .collect()
}

#[test]
fn ros2_topics_are_recorded_as_rclpy_published_them() {
    let test = "ros2_topics_are_recorded_as_rclpy_published_them";
    let Some(ros_python) = common::ros2::python(test) else { return };
    let Some(python) = common::readers::python(test) else { return };
    let Some(server) = TestServer::start(test) else { return };
    let dir = TempDir::new();
    let domain = domain_id(0);
    let robot = dir.0.join("robot.toml");
    std::fs::write(&robot, robot_config(domain)).unwrap();
    let operator = write_operator_config(&dir.0, "ros");

    let summary = dir.0.join("run-summary.json");
    let bridge =
        Process::spawn(&["run", "--summary-json", summary.to_str().unwrap()], &robot, &server);
    let publisher = start_publisher(&ros_python, domain, &[]);
    // The bridge finds the topics and receives the latched one before the operator is there.
    std::thread::sleep(Duration::from_secs(3));
    let recorder = Process::spawn(&["record"], &operator, &server);
    std::thread::sleep(Duration::from_secs(3));
    let published = stream_and_collect(publisher);
    std::thread::sleep(Duration::from_secs(2));
    let (ok, run_log) = bridge.stop();
    assert!(ok, "dtbridge run: {run_log}");
    let (ok, record_log) = recorder.stop();
    assert!(ok, "dtbridge record: {record_log}");
    eprintln!("dtbridge run:\n{run_log}\ndtbridge record:\n{record_log}");

    let file = recorded_file(&dir.0.join("out"));
    let seen = read_mcap(&python, &file);
    assert_eq!(seen["profile"], "ros2");
    let topics = recorded(&seen);

    // Reliable topics: every message after the first, which was published before the bridge
    // subscribed, equal to rclpy's and without a gap; and every frame the bridge sent.
    let bridged = run_summary(&summary).topics;
    for topic in RELIABLE {
        let before = assert_suffix(topic, &published[topic], &topics[topic]);
        assert_eq!(before, 1, "{topic}: the first recorded message is published message {before}");
        assert_eq!(
            topics[topic].len() as u64,
            bridged[topic].frames,
            "{topic}: recorded of bridged"
        );
    }
    // The topic that appeared 10 s after the start: what was published before the bridge
    // discovered it (every 0.5 s) and DDS matched the subscription is lost on the ROS side,
    // everything after it is recorded.
    let late = assert_suffix("/late", &published["/late"], &topics["/late"]);
    assert!(late <= 5, "/late: picked up only after {late} messages");
    assert_eq!(topics["/late"].len() as u64, bridged["/late"].frames, "/late: recorded of bridged");
    // Latched: published once, before the operator joined, and still recorded.
    let description = &topics["/robot_description"];
    assert!(description.iter().all(|m| *m == published["/robot_description"][0]));
    // Re-encoded to JPEG on the way: CompressedImage with the published headers, in order. A
    // camera route keeps the latest frames (queue_depth 2), so under load some may be left out.
    let color = &topics["/camera/color/image_raw"];
    let mut headers = published["/camera/color/image_raw"].iter().map(|m| &m["header"]);
    for image in color {
        let format = image["format"].as_str().unwrap_or("");
        assert!(format.contains("jpeg compressed"), "format '{format}'");
        assert!(headers.any(|h| *h == image["header"]), "a color header out of order or unknown");
    }
    assert!(color.len() >= 15, "{} of 30 color images recorded", color.len());
    // Denied topics never reach the operator.
    for topic in ["/secret/pose", "/rosout", "/parameter_events"] {
        assert!(!topics.contains_key(topic), "{topic} was bridged");
    }

    // Schemas: the texts rosbag2 writes, assembled by rclpy's side from the same index.
    let types = [
        "std_msgs/msg/String",
        "sensor_msgs/msg/Imu",
        "geometry_msgs/msg/PoseStamped",
        "sensor_msgs/msg/Image",
        "sensor_msgs/msg/CompressedImage",
    ];
    let reference =
        common::ros2::reference(&ros_python, &json!({ "messages": [], "types": types }));
    for (topic, (name, text)) in schemas(&file) {
        let expected = reference["types"][&name]["definition"].as_str();
        assert_eq!(Some(text.as_str()), expected, "{topic}: schema of {name}");
    }
}

/// What `ros2 launch dtbridge bridge.launch.{py,xml} config:=...` would start, run as ros2
/// launch runs a named node (`--ros-args -r __node:=NAME` appended): it must come up as that
/// ROS node. No `ros2 launch` exists as a wheel, so tests/peers/launch_commands.py reads the
/// files (Python AST, XML) and substitutes the arguments.
#[test]
fn the_launch_files_start_the_bridge_as_a_ros_node() {
    let test = "the_launch_files_start_the_bridge_as_a_ros_node";
    let Some(ros_python) = common::ros2::python(test) else { return };
    let dir = TempDir::new();
    let config = dir.0.join("robot.toml");
    std::fs::write(
        &config,
        format!(
            "[livekit]\nbackend = \"loopback\"\n\n[[sources]]\ntype = \"ros2\"\nname = \"ros\"\n\
             domain_id = {}\n\n[[routes]]\ntopic = \"/**\"\n",
            domain_id(1)
        ),
    )
    .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new(&ros_python)
        .arg(root.join("tests/peers/launch_commands.py"))
        .arg(root.join("launch"))
        .arg(format!("config={}", config.display()))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let nodes: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    let files: Vec<&str> = nodes.iter().map(|n| n["file"].as_str().unwrap()).collect();
    assert_eq!(files, ["bridge.launch.py", "bridge.launch.xml"]);
    for node in &nodes {
        // CMakeLists.txt installs the binary as lib/dtbridge/dtbridge, where ros2 launch
        // looks for package "dtbridge", executable "dtbridge".
        assert_eq!(
            (&node["package"], &node["executable"]),
            (&json!("dtbridge"), &json!("dtbridge"))
        );
        assert_eq!(node["declared"], json!(["config", "log_level"]), "{}", node["file"]);
        let name = node["name"].as_str().expect("a node name");
        let args: Vec<&str> =
            node["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        let env: BTreeMap<String, String> = serde_json::from_value(node["env"].clone()).unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dtbridge"))
            .args(&args)
            .args(["--ros-args", "-r", &format!("__node:={name}")])
            .envs(&env)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (lines, seen) = std::sync::mpsc::channel();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                _ = lines.send(line);
            }
        });
        let expected = format!("ROS 2 node '/{name}' up");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut log = String::new();
        while !log.contains(&expected) {
            let left = deadline.saturating_duration_since(Instant::now());
            match seen.recv_timeout(left) {
                Ok(line) => log.push_str(&(line + "\n")),
                Err(_) => panic!("{}: no '{expected}' within 20 s:\n{log}", node["file"]),
            }
        }
        std::process::Command::new("kill").arg(child.id().to_string()).status().unwrap();
        assert!(child.wait().unwrap().success(), "{}: {log}", node["file"]);
    }
}
