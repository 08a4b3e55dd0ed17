//! The live view through a real livekit-server, watched by Foxglove's own WebSocket protocol
//! client (`@foxglove/ws-protocol`) decoding with Foxglove's own CDR decoder
//! (`@foxglove/rosmsg2-serialization`): `tests/peers/node/foxglove_client.mjs`, installed by
//! `scripts/setup-node.sh`.
//!
//! Messages are compared with what the recorder wrote of the same frames (the live view and
//! the recorder log the same receive time), and the decoded images with dtbridge's own
//! decoding of the recorded bytes: depth pixels and JPEG bytes equal.

mod common;

use common::process::{Process, recorded_file, summary_json, write_operator_config};
use common::server::{TempDir, TestServer, free_tcp_port, test_ip};
use common::{sha256, string_cdr};
use dtbridge::codec::RosMessage;
use dtbridge::codec::ros::{CompressedImage, Image};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEPTH: &str = "/cam/depth/image_rect_raw";
const DEPTH_INFO: &str = "/cam/depth/camera_info";
const COLOR: &str = "/cam/color/image_raw";
const IMU: &str = "/cam/imu";
const WATCHED: [&str; 4] = [DEPTH, DEPTH_INFO, COLOR, IMU];
/// Sent once, when the robot starts (an MCAP replay of one message).
const DESCRIPTION: &str = "/robot_description";
const DESCRIPTION_TEXT: &str = "<robot name=\"test\"/>";

/// A small synthetic camera: depth zstd (decompressed by the view), color JPEG, IMU.
const ROBOT: &str = r#"
[livekit]
room = "view"
identity = "robot"

[[sources]]
type = "synthetic"
name = "camera"
namespace = "/cam"
width = 160
height = 120
color_width = 160
color_height = 120
fps = 10
imu_hz = 50

[[routes]]
topic = "/cam/depth/image_rect_raw"
compression = "zstd"

[[routes]]
topic = "/cam/color/image_raw"
image_format = "jpeg"

[[routes]]
topic = "/cam/**"
"#;

/// [`ROBOT`] with a source that sends [`DESCRIPTION`] once, from `description.mcap` in `dir`.
fn robot_with_description(dir: &Path) -> String {
    let file = std::fs::File::create(dir.join("description.mcap")).unwrap();
    let mut writer = mcap::Writer::new(std::io::BufWriter::new(file)).unwrap();
    let schema = writer.add_schema("std_msgs/msg/String", "ros2msg", b"string data").unwrap();
    let channel = writer.add_channel(schema, DESCRIPTION, "cdr", &BTreeMap::new()).unwrap();
    let header = mcap::records::MessageHeader {
        channel_id: channel,
        sequence: 0,
        log_time: 1,
        publish_time: 1,
    };
    writer.write_to_known_channel(&header, &string_cdr(DESCRIPTION_TEXT)).unwrap();
    writer.finish().unwrap();
    format!(
        "{ROBOT}\n[[sources]]\ntype = \"mcap\"\nname = \"description\"\npath = \"description.mcap\"\n\n\
         [[routes]]\ntopic = \"{DESCRIPTION}\"\n"
    )
}

/// A temporary directory holding `operator.toml` with a live view on a free port of the test
/// address, and that address.
fn viewer_in_temp_dir() -> (TempDir, String, PathBuf) {
    let dir = TempDir::new();
    let ip = test_ip();
    let address = format!("{ip}:{}", free_tcp_port(&ip));
    let operator = write_viewer_config(&dir.0, &address);
    (dir, address, operator)
}

/// `dtbridge run` of [`ROBOT`], its config written to `dir`.
fn spawn_robot(dir: &Path, server: &TestServer) -> Process {
    let robot = dir.join("robot.toml");
    std::fs::write(&robot, ROBOT).unwrap();
    Process::spawn(&["run"], &robot, server)
}

/// `operator.toml` with a live view on `address`.
fn write_viewer_config(dir: &Path, address: &str) -> PathBuf {
    let path = write_operator_config(dir, "view");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("\n[view]\naddress = \"{address}\"\n"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A running Foxglove client and the events it printed.
struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    events: Arc<Mutex<Vec<Value>>>,
}

impl Client {
    fn start(script: &Path, address: &str, subscribe: &[&str], extra: &[&str]) -> Client {
        let mut child = Command::new("node")
            .arg(script)
            .args(["--url", &format!("ws://{address}"), "--seconds", "300"])
            .args(["--subscribe", &subscribe.join(",")])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node runs");
        let stderr = child.stderr.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let event = serde_json::from_str(&line)
                    .unwrap_or_else(|err| panic!("client printed {line:?}: {err}"));
                sink.lock().unwrap().push(event);
            }
        });
        // Its diagnostics, as events too: a failure message shows them.
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(serde_json::json!({ "event": "stderr", "line": line }));
            }
        });
        let stdin = child.stdin.take();
        Client { child, stdin, events }
    }

    fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the events so far; panics with them after `timeout`.
    fn wait(&self, what: &str, timeout: Duration, done: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(&self.events()) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?}: {}",
                summary(&self.events())
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Closes its stdin (it leaves) and waits for it.
    fn stop(mut self) -> Vec<Value> {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the client failed: {status}");
        self.events()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        _ = self.child.kill();
        _ = self.child.wait();
    }
}

/// The events of `kind`.
fn of<'a>(events: &'a [Value], kind: &str) -> impl Iterator<Item = &'a Value> {
    events.iter().filter(move |e| e["event"] == kind)
}

/// Messages per topic.
fn message_counts(events: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for message in of(events, "message") {
        *counts.entry(message["topic"].as_str().unwrap().to_string()).or_default() += 1;
    }
    counts
}

/// The events without the messages' contents, for a failure message.
fn summary(events: &[Value]) -> String {
    let others: Vec<&Value> = events.iter().filter(|e| e["event"] != "message").collect();
    format!("messages {:?}, other events {others:?}", message_counts(events))
}

fn advertised(events: &[Value]) -> BTreeSet<String> {
    of(events, "advertise").map(|e| e["topic"].as_str().unwrap().to_string()).collect()
}

fn unadvertised(events: &[Value]) -> BTreeSet<String> {
    of(events, "unadvertise").map(|e| e["topic"].as_str().unwrap().to_string()).collect()
}

/// The recorded messages of `topic`: log time -> data.
fn recorded(file: &Path, topic: &str) -> BTreeMap<u64, Vec<u8>> {
    let bytes = std::fs::read(file).unwrap();
    mcap::MessageStream::new(&bytes)
        .unwrap()
        .map(|m| m.unwrap())
        .filter(|m| m.channel.topic == topic)
        .map(|m| (m.log_time, m.data.to_vec()))
        .collect()
}

/// Whether TCP_NODELAY is set on each connection process `pid` accepted on `port` (IPv4),
/// read on a duplicate of its socket (`pidfd_getfd`).
fn view_sockets_nodelay(pid: u32, port: u16) -> Vec<bool> {
    const ESTABLISHED: &str = "01";
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap();
    let inodes: BTreeSet<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = u16::from_str_radix(fields[1].rsplit(':').next()?, 16).ok()?;
            (local_port == port && fields[3] == ESTABLISHED).then(|| fields[9].to_string())
        })
        .collect();
    // SAFETY: plain system calls on descriptors this function opens and closes itself.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
    assert!(pidfd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    let mut nodelay = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let entry = entry.unwrap();
        let Ok(target) = std::fs::read_link(entry.path()) else { continue };
        let target = target.to_string_lossy();
        let inode = target.strip_prefix("socket:[").and_then(|rest| rest.strip_suffix(']'));
        if !inode.is_some_and(|inode| inodes.contains(inode)) {
            continue;
        }
        let fd: libc::c_int = entry.file_name().to_str().unwrap().parse().unwrap();
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: as above; `value` and `len` outlive the call.
        let read = unsafe {
            let copy = libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) as libc::c_int;
            assert!(copy >= 0, "pidfd_getfd: {}", std::io::Error::last_os_error());
            let read = libc::getsockopt(
                copy,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            );
            libc::close(copy);
            read
        };
        assert_eq!(read, 0, "getsockopt: {}", std::io::Error::last_os_error());
        nodelay.push(value != 0);
    }
    // SAFETY: closes the descriptor opened above.
    unsafe { libc::close(pidfd) };
    nodelay
}

#[test]
fn a_foxglove_client_sees_what_the_robot_sent_while_it_is_recorded() {
    let test = "a_foxglove_client_sees_what_the_robot_sent_while_it_is_recorded";
    let Some(script) = common::foxglove_client(test) else { return };
    let Some(server) = TestServer::start(test) else { return };
    let (dir, address, operator) = viewer_in_temp_dir();
    let summary_path = dir.0.join("record-summary.json");
    let args = ["record", "--summary-json", summary_path.to_str().unwrap()];
    let record = Process::spawn(&args, &operator, &server);
    assert!(record.wait_for("joined room", 1, Duration::from_secs(60)), "{}", record.log());
    let watcher = Client::start(&script, &address, &WATCHED, &[]);
    // A client that stops reading after a few messages must slow down nobody.
    let stalled = Client::start(&script, &address, &WATCHED, &["--stall-after", "5"]);
    let robot = dir.0.join("robot.toml");
    std::fs::write(&robot, robot_with_description(&dir.0)).unwrap();
    let run = Process::spawn(&["run"], &robot, &server);

    // Channels published after the client connected appear, and their messages flow.
    watcher.wait("20 messages of every watched topic", Duration::from_secs(90), |events| {
        let counts = message_counts(events);
        WATCHED.iter().all(|topic| counts.get(*topic).copied().unwrap_or(0) >= 20)
    });
    stalled.wait("the second client to stall", Duration::from_secs(60), |events| {
        of(events, "stalled").next().is_some()
    });
    // Each message leaves when it is sent: with Nagle's algorithm on, a small one waited for
    // the client's delayed acknowledgement (an IMU sample 15 ms at the median).
    let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
    let nodelay = view_sockets_nodelay(record.child.id(), port);
    assert_eq!(nodelay, [true, true], "TCP_NODELAY of the two clients' connections");
    // The description was sent once, seconds ago: a client that comes now still gets it.
    let late = Client::start(&script, &address, &[DESCRIPTION], &[]);
    late.wait("the robot description", Duration::from_secs(60), |events| {
        message_counts(events).contains_key(DESCRIPTION)
    });
    let late_events = late.stop();
    let description: Vec<&Value> = of(&late_events, "message").collect();
    assert_eq!(description.len(), 1, "{}", summary(&late_events));
    assert_eq!(description[0]["sha256"], sha256(&string_cdr(DESCRIPTION_TEXT)));
    assert_eq!(description[0]["decoded"]["data"], DESCRIPTION_TEXT);
    let (run_ok, run_log) = run.stop();
    assert!(run_ok, "{run_log}");
    // The robot left: its tracks are unpublished, and their channels go.
    watcher.wait("every channel removed", Duration::from_secs(60), |events| {
        WATCHED.iter().all(|topic| unadvertised(events).contains(*topic))
    });
    let events = watcher.stop();
    drop(stalled);
    let (record_ok, record_log) = record.stop();
    assert!(record_ok, "{record_log}");

    for event in &events {
        assert_ne!(event["event"], "decode_error", "{event}");
    }
    let channels: BTreeMap<&str, &Value> =
        of(&events, "advertise").map(|e| (e["topic"].as_str().unwrap(), e)).collect();
    let types = [
        (DEPTH, "sensor_msgs/msg/Image"),
        (DEPTH_INFO, "sensor_msgs/msg/CameraInfo"),
        (COLOR, "sensor_msgs/msg/CompressedImage"),
        (IMU, "sensor_msgs/msg/Imu"),
    ];
    for (topic, schema) in types {
        let channel = channels.get(topic).unwrap_or_else(|| panic!("{topic} not advertised"));
        assert_eq!(channel["encoding"], "cdr", "{channel}");
        assert_eq!(channel["schemaName"], schema, "{channel}");
        assert_eq!(channel["schemaEncoding"], "ros2msg", "{channel}");
    }

    let file = recorded_file(&dir.0.join("out"));
    for topic in WATCHED {
        let recording = recorded(&file, topic);
        let messages: Vec<&Value> =
            of(&events, "message").filter(|m| m["topic"] == topic).collect();
        let mut seen = BTreeSet::new();
        for message in &messages {
            let log_time: u64 = message["log_time_ns"].as_str().unwrap().parse().unwrap();
            let data = recording.get(&log_time).unwrap_or_else(|| {
                panic!("{topic}: a message the recorder did not get: {message}")
            });
            assert_eq!(message["sha256"], sha256(data), "{topic}: other bytes than recorded");
            let decoded = &message["decoded"];
            match topic {
                DEPTH => {
                    let image = Image::from_cdr(data).unwrap();
                    assert_eq!(decoded["width"], image.width);
                    assert_eq!(decoded["height"], image.height);
                    assert_eq!(decoded["encoding"], image.encoding);
                    assert_eq!(decoded["data"]["sha256"], sha256(&image.data), "depth pixels");
                }
                COLOR => {
                    let image = CompressedImage::from_cdr(data).unwrap();
                    assert_eq!(decoded["format"], image.format);
                    assert_eq!(decoded["data"]["sha256"], sha256(&image.data), "JPEG bytes");
                }
                _ => assert!(decoded.is_object(), "{topic} not decoded: {message}"),
            }
            seen.insert(log_time);
        }
        // A client that keeps up gets every frame from its first to its last.
        let (first, last) = (seen.first().unwrap(), seen.last().unwrap());
        let between = recording.range(first..=last).count();
        assert_eq!(seen.len(), between, "{topic}: frames missed between the first and last");
    }
    let summary = summary_json(&summary_path);
    assert_eq!(summary["dropped_behind"], 0, "the recorder fell behind: {summary}");
}

#[test]
fn dtbridge_view_receives_a_track_only_while_a_client_watches_it() {
    let test = "dtbridge_view_receives_a_track_only_while_a_client_watches_it";
    let Some(script) = common::foxglove_client(test) else { return };
    let Some(server) = TestServer::start(test) else { return };
    let (dir, address, operator) = viewer_in_temp_dir();
    let summary_path = dir.0.join("view-summary.json");
    let args = ["view", "--summary-json", summary_path.to_str().unwrap()];
    let view = Process::spawn(&args, &operator, &server);
    assert!(view.wait_for("joined room", 1, Duration::from_secs(60)), "{}", view.log());
    let watcher = Client::start(&script, &address, &[IMU], &[]);
    let run = spawn_robot(&dir.0, &server);

    watcher.wait("every channel and 50 imu messages", Duration::from_secs(90), |events| {
        WATCHED.iter().all(|topic| advertised(events).contains(*topic))
            && message_counts(events).get(IMU).copied().unwrap_or(0) >= 50
    });
    let (run_ok, run_log) = run.stop();
    assert!(run_ok, "{run_log}");
    watcher.wait("every channel removed", Duration::from_secs(60), |events| {
        WATCHED.iter().all(|topic| unadvertised(events).contains(*topic))
    });
    let events = watcher.stop();
    let (view_ok, view_log) = view.stop();
    assert!(view_ok, "{view_log}");

    let counts = message_counts(&events);
    assert_eq!(counts.keys().collect::<Vec<_>>(), [IMU], "only what it subscribed to");
    let summary = summary_json(&summary_path);
    let frames: BTreeMap<&str, u64> = summary["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["topic"].as_str().unwrap(), c["frames"].as_u64().unwrap()))
        .collect();
    assert!(frames[IMU] as usize >= counts[IMU], "{summary}");
    for topic in [DEPTH, DEPTH_INFO, COLOR] {
        assert_eq!(frames[topic], 0, "{topic} was received though nobody watched it: {summary}");
    }
}

#[test]
fn a_client_that_sends_garbage_is_disconnected_and_the_others_keep_watching() {
    let test = "a_client_that_sends_garbage_is_disconnected_and_the_others_keep_watching";
    let Some(script) = common::foxglove_client(test) else { return };
    let Some(server) = TestServer::start(test) else { return };
    let (dir, address, operator) = viewer_in_temp_dir();
    let view = Process::spawn(&["view"], &operator, &server);
    assert!(view.wait_for("joined room", 1, Duration::from_secs(60)), "{}", view.log());
    let run = spawn_robot(&dir.0, &server);
    let watcher = Client::start(&script, &address, &[IMU], &[]);
    watcher.wait("20 imu messages", Duration::from_secs(90), |events| {
        message_counts(events).get(IMU).copied().unwrap_or(0) >= 20
    });

    // It sends a text frame with an op the protocol does not have, then random bytes.
    let garbage = Client::start(&script, &address, &[IMU], &["--garbage"]);
    garbage.wait("the server closing the connection", Duration::from_secs(60), |events| {
        of(events, "close").next().is_some()
    });
    let events = garbage.events();
    let close = of(&events, "close").next().unwrap();
    assert_eq!(close["code"], 1002, "a protocol error: {}", summary(&events));
    assert!(
        of(&events, "status")
            .any(|s| s["level"] == 2 && s["message"].as_str().unwrap().contains("Invalid message")),
        "the client is told why: {}",
        summary(&events)
    );
    assert!(view.wait_for("sent an invalid message", 1, Duration::from_secs(30)), "{}", view.log());
    assert_eq!(
        view.log().matches("disconnecting it").count(),
        1,
        "one log line for one client: {}",
        view.log()
    );

    let before = message_counts(&watcher.events())[IMU];
    watcher.wait("20 more imu messages", Duration::from_secs(60), |events| {
        message_counts(events)[IMU] >= before + 20
    });
    drop(garbage);
    watcher.stop();
    let (run_ok, run_log) = run.stop();
    assert!(run_ok, "{run_log}");
    let (view_ok, view_log) = view.stop();
    assert!(view_ok, "{view_log}");
}

#[test]
fn a_live_view_on_a_port_in_use_is_a_clear_error() {
    let dir = TempDir::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("127.0.0.1:{}", taken.local_addr().unwrap().port());
    let operator = write_viewer_config(&dir.0, &address);
    let out = Command::new(env!("CARGO_BIN_EXE_dtbridge"))
        .args(["view", "-c", operator.to_str().unwrap()])
        .env("LIVEKIT_URL", "ws://127.0.0.1:9")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("cannot serve the live view on {address}")), "{stderr}");
}
