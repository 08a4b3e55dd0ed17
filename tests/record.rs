//! The operator side end to end: `dtbridge run` and `dtbridge record` as two processes through
//! a real livekit-server, and `dtbridge demo` with no server. Every recorded file is read back
//! by independent readers (the PyPI `mcap` + `mcap-ros2-support` and `rosbags` packages via
//! `tests/peers/read_mcap.py`) and checked against what was sent.

mod common;

use common::process::{Process, recorded_file, write_operator_config};
use common::readers::{messages, python, read_mcap};
use common::server::{TempDir, TestServer};
use dtbridge::codec::RosMessage;
use dtbridge::codec::ros::{CameraInfo, Image};
use dtbridge::source::synthetic::{camera_info, depth_image};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Every message decodes with both readers and the file is a ROS 2 profile file.
fn assert_readable(seen: &Value, topics: &[&str]) {
    assert_eq!(seen["profile"], "ros2", "profile");
    let messages = seen["messages"].as_array().expect("messages");
    for topic in topics {
        assert!(messages.iter().any(|m| m["topic"] == *topic), "no message on {topic}");
    }
    for message in messages {
        assert!(message.get("decode_error").is_none(), "mcap-ros2-support: {message}");
        assert!(message.get("decoded").is_some(), "not decoded: {message}");
    }
    let rosbags = &seen["rosbags"];
    assert!(rosbags.get("error").is_none(), "rosbags: {rosbags}");
    assert_eq!(
        rosbags["messages"].as_array().map(Vec::len),
        Some(messages.len()),
        "rosbags reads every message"
    );
}

/// A ROS 2 MCAP file with ten `std_msgs/msg/String` messages on `/chatter`, 100 ms apart;
/// returns the messages.
fn write_chatter_mcap(path: &Path) -> Vec<Vec<u8>> {
    let mut writer =
        mcap::WriteOptions::new().profile("ros2").create(std::io::Cursor::new(Vec::new())).unwrap();
    let schema = writer.add_schema("std_msgs/msg/String", "ros2msg", b"string data\n").unwrap();
    let channel =
        writer.add_channel(schema, "/chatter", "cdr", &std::collections::BTreeMap::new()).unwrap();
    let messages: Vec<Vec<u8>> =
        (0..10u32).map(|i| common::string_cdr(&format!("hello {i}"))).collect();
    for (i, data) in messages.iter().enumerate() {
        let time = 1_700_000_000_000_000_000 + i as u64 * 100_000_000;
        let header = mcap::records::MessageHeader {
            channel_id: channel,
            sequence: i as u32,
            log_time: time,
            publish_time: time,
        };
        writer.write_to_known_channel(&header, data).unwrap();
    }
    writer.finish().unwrap();
    std::fs::write(path, writer.into_inner().into_inner()).unwrap();
    messages
}

/// `dtbridge record` (`record_args`, then `-c operator`) joins, `dtbridge run -c robot`
/// streams for 3 s, and both stop cleanly; returns the recorder's log.
fn record_a_run(
    server: &TestServer,
    robot: &Path,
    operator: &Path,
    record_args: &[&str],
) -> String {
    let recorder = Process::spawn(record_args, operator, server);
    assert!(recorder.wait_for("joined room", 1, Duration::from_secs(30)), "dtbridge record joins");
    let publisher = Process::spawn(&["run"], robot, server);
    assert!(publisher.wait_for("joined room", 1, Duration::from_secs(30)), "dtbridge run joins");
    std::thread::sleep(Duration::from_secs(3));
    let (ok, log) = publisher.stop();
    assert!(ok, "dtbridge run: {log}");
    std::thread::sleep(Duration::from_millis(500));
    let (ok, log) = recorder.stop();
    assert!(ok, "dtbridge record: {log}");
    log
}

#[test]
fn run_and_record_through_livekit_server() {
    let test = "run_and_record_through_livekit_server";
    let Some(python) = python(test) else { return };
    let Some(server) = TestServer::start(test) else { return };
    let dir = TempDir::new();
    let robot = dir.0.join("robot.toml");
    std::fs::write(
        &robot,
        "[livekit]\nroom = \"field\"\nidentity = \"robot\"\n\n\
         [[sources]]\ntype = \"synthetic\"\nname = \"camera\"\nnamespace = \"/cam\"\n\
         width = 64\nheight = 48\nfps = 10\nimu_hz = 0\ncolor = false\n\n\
         [[sources]]\ntype = \"mcap\"\nname = \"replay\"\npath = \"chatter.mcap\"\nloop = true\n\n\
         [[routes]]\ntopic = \"/cam/depth/image_rect_raw\"\ncompression = \"zstd\"\n\n\
         [[routes]]\ntopic = \"/**\"\n",
    )
    .unwrap();
    let chatter = write_chatter_mcap(&dir.0.join("chatter.mcap"));
    let operator = write_operator_config(&dir.0, "field");

    let record_summary = dir.0.join("record-summary.json");
    let record_args = ["record", "--summary-json", record_summary.to_str().unwrap()];
    record_a_run(&server, &robot, &operator, &record_args);

    let file = recorded_file(&dir.0.join("out"));
    let seen = read_mcap(&python, &file);
    assert_readable(&seen, &["/cam/depth/image_rect_raw", "/cam/depth/camera_info", "/chatter"]);

    // The recorder's JSON summary says what the file holds.
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&record_summary).unwrap()).unwrap();
    let files = summary["summary"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{summary}");
    assert_eq!(files[0]["status"], "complete", "{summary}");
    assert_eq!(files[0]["path"], file.to_str().unwrap(), "{summary}");
    let messages_in_file = seen["messages"].as_array().unwrap().len() as u64;
    assert_eq!(files[0]["messages"].as_u64(), Some(messages_in_file), "{summary}");
    let frames: u64 = summary["summary"]["stats"]["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["frames"].as_u64().unwrap())
        .sum();
    assert_eq!(frames, messages_in_file, "{summary}");

    // The replayed channel arrives as it is in the file, with its own schema.
    let replayed = messages(&file, "/chatter");
    assert!(replayed.len() >= 10, "{} replayed messages", replayed.len());
    for (_, data) in &replayed {
        assert!(chatter.contains(data), "a replayed message differs from the file's");
    }
    let channel = seen["channels"].as_array().unwrap().iter().find(|c| c["topic"] == "/chatter");
    assert_eq!(channel.map(|c| c["schema_name"].clone()), Some("std_msgs/msg/String".into()));

    // Pixels: every recorded depth image is one of the synthetic frames, byte for byte (it was
    // zstd-compressed on the way and is stored decompressed), and its publish time is its
    // header stamp.
    let depth = messages(&file, "/cam/depth/image_rect_raw");
    assert!(depth.len() >= 20, "{} depth frames", depth.len());
    for (publish_time, data) in &depth {
        let image = Image::from_cdr(data).expect("an Image");
        let frame = (0..200)
            .find(|&n| depth_image(64, 48, n, image.header.clone()).data == image.data)
            .expect("the pixels of one of the synthetic frames");
        assert!(frame < 200);
        let stamp_ms = image.header.stamp.to_nanos() as u64 / 1_000_000;
        assert_eq!(*publish_time, stamp_ms * 1_000_000, "publish time = header stamp (ms)");
    }
    for (_, data) in messages(&file, "/cam/depth/camera_info") {
        let info = CameraInfo::from_cdr(&data).expect("a CameraInfo");
        assert_eq!(info, camera_info(64, 48, info.header.clone()));
    }
}

/// An MCAP file with `robot.Pose` protobuf messages on `/pose` (as Foxglove's own recordings
/// are protobuf): the schema is the compiled `FileDescriptorSet`, as MCAP requires. Returns
/// each message's (x, frame_id).
fn write_pose_mcap(dir: &Path) -> Vec<(f64, String)> {
    use prost::Message;
    let proto = dir.join("pose.proto");
    std::fs::write(
        &proto,
        "syntax = \"proto3\";\npackage robot;\nmessage Pose { double x = 1; string frame_id = 2; }\n",
    )
    .unwrap();
    let set = protox::compile([&proto], [dir]).expect("pose.proto compiles");
    let mut writer = mcap::WriteOptions::new().create(std::io::Cursor::new(Vec::new())).unwrap();
    let schema = writer.add_schema("robot.Pose", "protobuf", &set.encode_to_vec()).unwrap();
    let channel = writer
        .add_channel(schema, "/pose", "protobuf", &std::collections::BTreeMap::new())
        .unwrap();
    let poses: Vec<(f64, String)> = (0..10).map(|i| (i as f64 * 0.5, format!("map{i}"))).collect();
    for (i, (x, frame_id)) in poses.iter().enumerate() {
        // The protobuf wire format by hand: field 1 (double, 64-bit), field 2 (string).
        let mut data = vec![0x09];
        data.extend_from_slice(&x.to_le_bytes());
        data.extend_from_slice(&[0x12, frame_id.len() as u8]);
        data.extend_from_slice(frame_id.as_bytes());
        let time = 1_700_000_000_000_000_000 + i as u64 * 100_000_000;
        let header = mcap::records::MessageHeader {
            channel_id: channel,
            sequence: i as u32,
            log_time: time,
            publish_time: time,
        };
        writer.write_to_known_channel(&header, &data).unwrap();
    }
    writer.finish().unwrap();
    std::fs::write(dir.join("pose.mcap"), writer.into_inner().into_inner()).unwrap();
    poses
}

/// A protobuf channel replayed by `dtbridge run` (its schema travels as a base64
/// `FileDescriptorSet`) and recorded by `dtbridge record` decodes with Foxglove's own protobuf
/// decoder (`mcap-protobuf-support`).
#[test]
fn a_replayed_protobuf_channel_decodes_with_foxgloves_decoder() {
    let test = "a_replayed_protobuf_channel_decodes_with_foxgloves_decoder";
    let Some(python) = python(test) else { return };
    let Some(server) = TestServer::start(test) else { return };
    let dir = TempDir::new();
    let poses = write_pose_mcap(&dir.0);
    let robot = dir.0.join("robot.toml");
    std::fs::write(
        &robot,
        "[livekit]\nroom = \"proto\"\nidentity = \"robot\"\n\n\
         [[sources]]\ntype = \"mcap\"\nname = \"replay\"\npath = \"pose.mcap\"\nloop = true\n\n\
         [[routes]]\ntopic = \"/**\"\n",
    )
    .unwrap();
    let operator = write_operator_config(&dir.0, "proto");
    let log = record_a_run(&server, &robot, &operator, &["record"]);
    assert!(!log.contains("without a schema"), "dtbridge record: {log}");

    let seen = read_mcap(&python, &recorded_file(&dir.0.join("out")));
    let channel = seen["channels"].as_array().unwrap().iter().find(|c| c["topic"] == "/pose");
    let channel = channel.expect("a /pose channel");
    assert_eq!(
        (&channel["schema_name"], &channel["schema_encoding"]),
        (&"robot.Pose".into(), &"protobuf".into())
    );
    let messages: Vec<&Value> =
        seen["messages"].as_array().unwrap().iter().filter(|m| m["topic"] == "/pose").collect();
    assert!(messages.len() >= poses.len(), "{} messages on /pose", messages.len());
    for message in messages {
        assert!(message.get("decode_error").is_none(), "mcap-protobuf-support: {message}");
        let decoded = &message["decoded"];
        let pose = (
            decoded["x"].as_f64().unwrap_or(0.0),
            decoded["frame_id"].as_str().unwrap_or_default().to_string(),
        );
        assert!(poses.contains(&pose), "decoded {decoded}, not one of the file's poses");
    }
}

#[test]
fn demo_writes_a_file_the_independent_readers_open() {
    let test = "demo_writes_a_file_the_independent_readers_open";
    let Some(python) = python(test) else { return };
    let dir = TempDir::new();
    let file = dir.0.join("demo.mcap");
    let output = Command::new(env!("CARGO_BIN_EXE_dtbridge"))
        .args(["demo", "--seconds", "2", "--output"])
        .arg(&file)
        .env_remove("LIVEKIT_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("open it in Foxglove"), "{stdout}");
    let seen = read_mcap(&python, &file);
    assert_readable(
        &seen,
        &[
            "/camera/camera/depth/image_rect_raw",
            "/camera/camera/color/image_raw",
            "/camera/camera/color/camera_info",
            "/camera/camera/imu",
        ],
    );
}

#[test]
fn a_killed_recorder_leaves_a_file_repair_recovers() {
    let test = "a_killed_recorder_leaves_a_file_repair_recovers";
    let Some(server) = TestServer::start(test) else { return };
    let dir = TempDir::new();
    let robot = dir.0.join("robot.toml");
    std::fs::write(
        &robot,
        "[livekit]\nroom = \"kill\"\nidentity = \"robot\"\n\n\
         [[sources]]\ntype = \"synthetic\"\nname = \"imu\"\nnamespace = \"/robot\"\n\
         depth = false\ncolor = false\nimu_hz = 50\n\n[[routes]]\ntopic = \"/robot/imu\"\n",
    )
    .unwrap();
    let operator = write_operator_config(&dir.0, "kill");
    let mut recorder = Process::spawn(&["record"], &operator, &server);
    assert!(recorder.wait_for("joined room", 1, Duration::from_secs(30)), "dtbridge record joins");
    let publisher = Process::spawn(&["run"], &robot, &server);
    assert!(publisher.wait_for("joined room", 1, Duration::from_secs(30)), "dtbridge run joins");
    // Well over 100 frames at 50 Hz to recover, behind the newest second that may still be
    // unflushed and the first half second a new track holds back (4 s left 89 under load).
    std::thread::sleep(Duration::from_secs(6));
    // SIGKILL: no chance to finish the file.
    recorder.child.kill().unwrap();
    let killed_at_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as u64;
    recorder.child.wait().unwrap();
    let (ok, log) = publisher.stop();
    assert!(ok, "dtbridge run: {log}");

    let damaged = recorded_file(&dir.0.join("out"));
    let repaired = dir.0.join("repaired.mcap");
    let output = Command::new(env!("CARGO_BIN_EXE_dtbridge"))
        .arg("repair")
        .arg(&damaged)
        .arg("-o")
        .arg(&repaired)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let imu = messages(&repaired, "/robot/imu");
    assert!(imu.len() > 100, "{} IMU messages recovered", imu.len());
    // Frames a second or more before the kill were in flushed chunks.
    let newest_ms = imu.iter().map(|(t, _)| t / 1_000_000).max().unwrap();
    assert!(
        newest_ms + 1_000 >= killed_at_ms,
        "the newest recovered frame is {} ms older than the kill",
        killed_at_ms - newest_ms
    );
    // Recovered frames are complete: consecutive 20 ms apart, no gaps beyond a few frames.
    let mut stamps: Vec<u64> = imu.iter().map(|(t, _)| t / 1_000_000).collect();
    stamps.sort();
    let gaps = stamps.windows(2).filter(|w| w[1] - w[0] > 100).count();
    assert_eq!(gaps, 0, "gaps in the recovered frames: {stamps:?}");
}

/// With a ready `LIVEKIT_TOKEN` (no API key or secret, no room or identity in the config), the
/// recording is named after the room and identity the token carries, as the server reports
/// them.
#[test]
fn a_recorder_with_a_ready_token_names_its_file_after_the_tokens_room_and_identity() {
    let test = "a_recorder_with_a_ready_token_names_its_file_after_the_tokens_room_and_identity";
    let Some(server) = TestServer::start(test) else { return };
    let token = livekit_api::access_token::AccessToken::with_api_key(
        common::server::API_KEY,
        common::server::API_SECRET,
    )
    .with_identity("ops-7")
    .with_grants(livekit_api::access_token::VideoGrants {
        room_join: true,
        room: "yard-3".into(),
        can_subscribe: Some(true),
        can_publish: Some(false),
        can_publish_data: Some(false),
        ..Default::default()
    })
    .to_jwt()
    .unwrap();
    let dir = TempDir::new();
    let config = dir.0.join("operator.toml");
    std::fs::write(&config, "[record]\noutput_dir = \"out\"\n").unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_dtbridge"));
    command
        .args(["record", "-c"])
        .arg(&config)
        .env("LIVEKIT_URL", server.url())
        .env("LIVEKIT_TOKEN", &token)
        .env_remove("LIVEKIT_API_KEY")
        .env_remove("LIVEKIT_API_SECRET")
        .env("RUST_LOG", "dtbridge=info");
    let recorder = Process::watch(command);
    assert!(
        recorder.wait_for("joined room 'yard-3' as 'ops-7'", 1, Duration::from_secs(30)),
        "{}",
        recorder.log()
    );
    let (ok, log) = recorder.stop();
    assert!(ok, "{log}");
    let file = recorded_file(&dir.0.join("out"));
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    assert!(name.contains("_yard-3_ops-7_"), "{name}");
}

/// A room with more tracks than `max_tracks` (a flood of tracks, hostile or by mistake) does
/// not grow the recorder without bound: it records `max_tracks` of them and counts the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_beyond_max_tracks_are_counted_not_recorded() {
    use dtbridge::livekit::{LoopbackHub, TrackOptions};
    let hub = LoopbackHub::new("flood");
    let (operator, events) = hub.join("operator").unwrap();
    let dir = TempDir::new();
    let recorder = dtbridge::recorder::RecorderConfig::new(&dir.0, "flood", "operator");
    let patterns = dtbridge::config::RecordConfig { max_tracks: 2, ..Default::default() };
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let recording =
        tokio::spawn(dtbridge::record::record(operator, events, recorder, patterns, None, stop));
    let (robot, _robot_events) = hub.join("robot").unwrap();
    let mut tracks = Vec::new();
    for i in 0..5 {
        tracks.push(robot.publish_track(TrackOptions::new(format!("t{i}"))).await.unwrap());
    }
    // Frames until the two recorded tracks have some: the recorder subscribes as it sees them.
    for round in 0..200u64 {
        for track in &tracks {
            _ = track.try_push(vec![round as u8; 10], Some(1_700_000_000_000 + round));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_tx.send_replace(true);
    let report = recording.await.unwrap().unwrap();
    assert_eq!(report.tracks_over_limit, 3);
    let file = &report.summary.files[0].path;
    let bytes = std::fs::read(file).unwrap();
    let topics: std::collections::BTreeSet<String> = mcap::MessageStream::new(&bytes)
        .unwrap()
        .map(|message| message.unwrap().channel.topic.clone())
        .collect();
    assert_eq!(topics.len(), 2, "{topics:?}");
}
