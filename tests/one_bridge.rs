//! One robot, one bridge: a `dtbridge` built with both `ros2` and `realsense` bridges an rclpy
//! publisher and a RealSense recording in one `dtbridge run`, recorded through a real
//! livekit-server by `dtbridge record`; its camera driver (`dtbridge-realsense`, a child
//! process) is killed and then hung mid-run, and ROS 2 goes on without a gap meanwhile.

#![cfg(all(feature = "ros2", feature = "realsense"))]

mod common;

use common::process::{Process, recorded_file, run_summary, summary_json, write_operator_config};
use common::readers::{messages, read_mcap};
use common::realsense::{FRAMES, depth_pixels, make_recording};
use common::ros2::{assert_suffix, domain_id, recorded, start_publisher, stream_and_collect};
use common::server::{TempDir, TestServer};
use dtbridge::codec::RosMessage;
use dtbridge::codec::ros::Image;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// ROS 2 topics published reliably throughout: none of their messages may be lost.
const RELIABLE: [&str; 3] = ["/chatter", "/imu", "/pose"];
const DEPTH_TOPIC: &str = "/camera/camera/depth/image_rect_raw";

/// The camera driver processes `dtbridge run` (pid `parent`) runs now.
fn drivers(parent: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid ...`; comm is cut to 15 bytes.
        let Some((comm, rest)) = stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") "))
        else {
            continue;
        };
        let ppid = rest.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok());
        if comm == "dtbridge-realse" && ppid == Some(parent) {
            pids.push(pid);
        }
    }
    pids
}

/// Waits for a camera driver of `parent` other than `old` and returns its pid.
fn new_driver(parent: u32, old: Option<u32>, within: Duration) -> u32 {
    let deadline = Instant::now() + within;
    loop {
        if let Some(pid) = drivers(parent).into_iter().find(|pid| Some(*pid) != old) {
            return pid;
        }
        assert!(Instant::now() < deadline, "no new camera driver within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill").args([signal, &pid.to_string()]).status();
    assert!(status.unwrap().success(), "kill {signal} {pid}");
}

fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

#[test]
fn ros2_and_realsense_in_one_bridge_whose_camera_driver_crashes_and_hangs() {
    let test = "ros2_and_realsense_in_one_bridge_whose_camera_driver_crashes_and_hangs";
    let Some(realsense_python) = common::realsense::python(test) else { return };
    let Some(ros_python) = common::ros2::python(test) else { return };
    let Some(python) = common::readers::python(test) else { return };
    let Some(server) = TestServer::start(test) else { return };
    let dir = TempDir::new();
    make_recording(&realsense_python, &dir.0.join("camera.db3"), "rgb8", &[]);
    let domain = domain_id(1);
    let robot = dir.0.join("robot.toml");
    std::fs::write(
        &robot,
        format!(
            "[livekit]\nroom = \"one\"\nidentity = \"robot\"\n\n\
             [[sources]]\ntype = \"ros2\"\nname = \"ros\"\ndomain_id = {domain}\n\
             topics = [\"/chatter\", \"/imu\", \"/pose\"]\ndiscovery_interval_s = 0.5\n\n\
             [[sources]]\ntype = \"realsense\"\nname = \"camera\"\nfile = \"camera.db3\"\n\
             loop = true\nretry_interval_s = 1\n\n\
             [[routes]]\ntopic = \"/**\"\nqueue_depth = 512\n"
        ),
    )
    .unwrap();
    let operator = write_operator_config(&dir.0, "one");
    // The operator first, so that it records every frame the bridge sends.
    let recorder = Process::spawn(&["record"], &operator, &server);
    assert!(recorder.wait_for("joined room", 1, Duration::from_secs(60)), "record joins");
    let summary = dir.0.join("run-summary.json");
    let bridge =
        Process::spawn(&["run", "--summary-json", summary.to_str().unwrap()], &robot, &server);
    let bridge_pid = bridge.child.id();
    let publisher = start_publisher(&ros_python, domain, &["--seconds", "30"]);
    // The bridge finds the ROS 2 topics (every 0.5 s) before the publisher streams.
    std::thread::sleep(Duration::from_secs(3));
    let streaming = std::thread::spawn(move || stream_and_collect(publisher));

    // A crash: the driver killed outright. Then a hang: the next one stopped (SIGSTOP), as
    // librealsense stuck in a USB call; the bridge kills it when it has sent nothing for 10 s.
    std::thread::sleep(Duration::from_secs(4));
    let first = new_driver(bridge_pid, None, Duration::from_secs(30));
    signal(first, "-KILL");
    let second = new_driver(bridge_pid, Some(first), Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    signal(second, "-STOP");
    let third = new_driver(bridge_pid, Some(second), Duration::from_secs(60));
    let third_started = unix_ns();
    let published = streaming.join().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let (ok, run_log) = bridge.stop();
    assert!(ok, "dtbridge run: {run_log}");
    let (ok, record_log) = recorder.stop();
    assert!(ok, "dtbridge record: {record_log}");
    eprintln!("drivers {first}, {second}, {third}\ndtbridge run:\n{run_log}");

    // The summary reports both restarts.
    let json = summary_json(&summary);
    let restarts = json["sources"].as_array().expect("sources");
    assert_eq!(restarts.len(), 1, "{json}");
    assert_eq!(restarts[0]["source"], "camera");
    assert_eq!(restarts[0]["restarts"], 2, "{json}");

    // ROS 2 went on throughout: every message rclpy published from the first recorded one on,
    // equal and without a gap, and every frame the bridge sent.
    let file = recorded_file(&dir.0.join("out"));
    let topics = recorded(&read_mcap(&python, &file));
    let bridged = run_summary(&summary).topics;
    for topic in RELIABLE {
        assert_suffix(topic, &published[topic], &topics[topic]);
        assert_eq!(topics[topic].len() as u64, bridged[topic].frames, "{topic}: recorded of sent");
    }

    // The camera came back after the hang, and every depth frame is exact: one of the
    // recording's frames, bit for bit.
    let depth = messages(&file, DEPTH_TOPIC);
    let after = depth.iter().filter(|(time, _)| *time > third_started).count();
    assert!(after >= FRAMES as usize / 2, "{after} depth frames after the hang\n{run_log}");
    let frames: Vec<Vec<u8>> = (0..FRAMES).map(depth_pixels).collect();
    for (_, data) in &depth {
        let image = Image::from_cdr(data).expect("an Image");
        assert!(frames.contains(&image.data), "a depth frame that is none of the recording's");
    }
    assert_eq!(depth.len() as u64, bridged[DEPTH_TOPIC].frames, "depth: recorded of sent");
}
