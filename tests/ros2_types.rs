//! What robots publish besides raw images, end to end: transforms (`tf2_msgs/TFMessage` on `/tf`
//! and the latched `/tf_static`), odometry, laser scans and point clouds (zstd on the way),
//! `image_transport` compressed images (passed through as is), and a message type from a
//! team's own package. rclpy publishes them (tests/peers/ros2_publisher.py `--graph types`),
//! `dtbridge run` bridges them to a real livekit-server, `dtbridge record` records them, and
//! the recording decodes to what rclpy published with three independent decoders:
//! mcap-ros2-support, rosbags (whose type hashes computed from the recorded definitions must be
//! those rosidl generated), and the Foxglove app's own (tests/peers/node/decode_ros2.mjs).
//!
//! `tf2_msgs` has no wheel, and a team's package none either: a real `colcon build` of
//! tests/ros2_packages (the rosidl generators from the wheels) makes both, and the bridge and
//! the publisher run in a shell that sourced the workspace. The bridge is this test build's
//! binary: r2r generated neither package when it was built (IDL_PACKAGE_FILTER), so it loads
//! their type supports at run time. Needs `--features ros2` and scripts/ros2-env.sh's
//! environment (scripts/test.sh provides both), and runs in scripts/netns-run.sh's namespace.

#![cfg(feature = "ros2")]

mod common;

use common::process::{Process, recorded_file, run_summary, write_operator_config};
use common::readers::{decode_with_foxglove, numbers_as_f64, read_mcap};
use common::ros2::{
    assert_suffix, domain_id, peer_in, recorded, sourced, start_publisher_in, stream_once_recording,
};
use common::server::{TempDir, TestServer};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Topics published reliably throughout: none of their messages may be lost once the
/// operator records.
const STREAMED: [&str; 6] =
    ["/tf", "/odom", "/scan", "/points", "/camera/color/image_raw/compressed", "/battery"];

/// The types the publisher sends, for their reference definitions and hashes.
const TYPES: [&str; 6] = [
    "tf2_msgs/msg/TFMessage",
    "nav_msgs/msg/Odometry",
    "sensor_msgs/msg/LaserScan",
    "sensor_msgs/msg/PointCloud2",
    "sensor_msgs/msg/CompressedImage",
    "dtbridge_test_msgs/msg/BatteryReport",
];

/// `messages` with their numbers as floats, as [`decode_with_foxglove`] gives them.
fn floats(messages: &[serde_json::Value]) -> Vec<serde_json::Value> {
    messages.iter().map(numbers_as_f64).collect()
}

/// `colcon build` of tests/ros2_packages into the workspace `ws`; returns its setup script.
fn build_message_packages(colcon: &Path, ws: &Path) -> std::path::PathBuf {
    let packages = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ros2_packages");
    let started = Instant::now();
    let output = Command::new(colcon)
        .current_dir(ws)
        .arg("build")
        .arg("--base-paths")
        .arg(&packages)
        .output()
        .expect("run colcon");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "colcon build failed ({}):\n{log}", output.status);
    eprintln!("colcon build of the message packages took {:?}:\n{log}", started.elapsed());
    ws.join("install/setup.bash")
}

/// The bridge's configuration: every topic but ROS 2's own, point clouds and scans
/// zstd-compressed, every message kept (deep queues, and deadlines no loaded machine misses:
/// this test is about types, tests/uplink.rs about what a slow link drops).
fn robot_config(domain_id: u32) -> String {
    let keep = "queue_depth = 512\nmax_latency_ms = 30000";
    format!(
        "[livekit]\nroom = \"types\"\nidentity = \"robot\"\n\n\
         [[sources]]\ntype = \"ros2\"\nname = \"ros\"\ndomain_id = {domain_id}\n\
         deny = [\"/rosout\", \"/parameter_events\"]\n\
         discovery_interval_s = 0.5\nlatched_resend_s = 2\n\n\
         [[routes]]\ntopic = \"/points\"\ncompression = \"zstd\"\n{keep}\n\n\
         [[routes]]\ntopic = \"/scan\"\ncompression = \"zstd\"\n{keep}\n\n\
         [[routes]]\ntopic = \"/**\"\n{keep}\n"
    )
}

#[test]
fn what_robots_publish_is_recorded_and_decodes_in_foxglove_as_rclpy_published_it() {
    let test = "what_robots_publish_is_recorded_and_decodes_in_foxglove_as_rclpy_published_it";
    let Some(colcon) = common::ros2::colcon(test) else { return };
    let Some(ros_python) = common::ros2::python(test) else { return };
    let Some(python) = common::readers::python(test) else { return };
    let Some(client) = common::foxglove_client(test) else { return };
    let Some(server) = TestServer::start(test) else { return };
    let filter = option_env!("IDL_PACKAGE_FILTER").unwrap_or("");
    assert!(
        !filter.is_empty() && !filter.contains("nav_msgs") && !filter.contains("sensor_msgs"),
        "build with scripts/ros2-env.sh's IDL_PACKAGE_FILTER (it leaves out nav_msgs and sensor_msgs: this test shows types r2r did not generate are bridged); it was '{filter}'"
    );
    let ws = TempDir::new();
    let setup = build_message_packages(&colcon, &ws.0);

    let dir = TempDir::new();
    let domain = domain_id(0);
    let robot = dir.0.join("robot.toml");
    std::fs::write(&robot, robot_config(domain)).unwrap();
    let operator = write_operator_config(&dir.0, "types");
    let summary = dir.0.join("run-summary.json");
    let run_args = ["run", "--summary-json", summary.to_str().unwrap()];
    let bridge = Process::watch(Process::joined(
        sourced(&setup, Path::new(env!("CARGO_BIN_EXE_dtbridge"))),
        &run_args,
        &robot,
        &server,
    ));
    let publisher = start_publisher_in(
        peer_in(sourced(&setup, &ros_python), &ros_python, "ros2_publisher.py"),
        domain,
        &["--graph", "types", "--seconds", "4"],
    );
    let recorder = Process::spawn(&["record"], &operator, &server);
    let published = stream_once_recording(publisher, &recorder, "/tf_static");
    let (ok, run_log) = bridge.stop();
    assert!(ok, "dtbridge run: {run_log}");
    let (ok, record_log) = recorder.stop();
    assert!(ok, "dtbridge record: {record_log}");
    eprintln!("dtbridge run:\n{run_log}\ndtbridge record:\n{record_log}");

    let file = recorded_file(&dir.0.join("out"));
    let seen = read_mcap(&python, &file);
    assert_eq!(seen["profile"], "ros2");
    let topics = recorded(&seen);
    let foxglove = decode_with_foxglove(&client, &file);
    let bridged = run_summary(&summary).topics;
    for topic in STREAMED {
        // The first message went out before the bridge subscribed; all the others arrive.
        let before = assert_suffix(topic, &published[topic], &topics[topic]);
        assert!(before <= 1, "{topic}: the first recorded message is published message {before}");
        assert_eq!(
            topics[topic].len() as u64,
            bridged[topic].frames,
            "{topic}: recorded of bridged"
        );
        assert_eq!(foxglove[topic], floats(&topics[topic]), "{topic}: Foxglove's decoders");
    }
    let tf_static = &topics["/tf_static"];
    assert!(tf_static.iter().all(|m| *m == published["/tf_static"][0]), "/tf_static");
    assert_eq!(foxglove["/tf_static"], floats(tf_static), "/tf_static: Foxglove's decoders");

    // rosbags decodes each message from the recorded definitions alone, and the type hashes
    // it computes from them are those rosidl generated: the definitions are whole.
    let rosbags = &seen["rosbags"];
    assert!(rosbags.get("error").is_none(), "rosbags: {rosbags}");
    for message in rosbags["messages"].as_array().unwrap() {
        let topic = message["topic"].as_str().unwrap();
        assert!(
            topics[topic].contains(&message["decoded"]),
            "{topic}: rosbags decoded a message mcap-ros2-support did not: {}",
            message["decoded"]
        );
    }
    let reference = common::ros2::reference_in(
        peer_in(sourced(&setup, &ros_python), &ros_python, "ros2_reference.py"),
        &json!({ "messages": [], "types": TYPES }),
    );
    for name in TYPES {
        assert_eq!(
            rosbags["type_hashes"][name], reference["types"][name]["hash"],
            "{name}: the type hash of the recorded definition"
        );
    }
    // CompressedImage is passed through: recorded as sent, not re-encoded.
    let channel = |topic: &str| {
        seen["channels"].as_array().unwrap().iter().find(|c| c["topic"] == topic).unwrap().clone()
    };
    for topic in STREAMED.iter().chain(&["/tf_static"]) {
        assert_eq!(channel(topic)["message_encoding"], "cdr", "{topic}");
    }
    assert_eq!(channel("/battery")["schema_name"], "dtbridge_test_msgs/msg/BatteryReport");
}
