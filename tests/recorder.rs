//! The MCAP recorder core: what it writes for typed, compressed, untyped and broken tracks,
//! rotation, crash recovery (a real SIGKILL of a child process, then `repair`) and a full disk
//! (a child process under a file size limit).
//!
//! Every file is read back with the `mcap` crate (linear and indexed) and with independent
//! Python readers (`tests/peers/read_mcap.py`: the `mcap` package with mcap-ros2-support's
//! decoder, and rosbags) from the venv `scripts/setup-python.sh` builds (`DTBRIDGE_PYTHON`,
//! else `${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}/venv/bin/python`). Without it the Python
//! half skips loudly, and fails with `CI=true`.

mod common;

use common::readers::{python, read_mcap};
use dtbridge::codec::RosMessage;
use dtbridge::codec::compress::zstd_compress;
use dtbridge::codec::ros::{CameraInfo, Header, Image, Time};
use dtbridge::recorder::{
    FileStatus, MAX_TOPIC_CHARS, RAW_MESSAGE_ENCODING, RETRY_AFTER_ERROR, Recorder, RecorderConfig,
    RecorderError, RepairError, TrackId, TrackMeta, WriteError, repair,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ------------------------------------------------------------------ helpers

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let path = std::env::temp_dir()
            .join(format!("dtbridge-recorder-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(&self.0).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        files
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// Incompressible bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn image(i: u32) -> Image {
    Image {
        header: Header {
            stamp: Time::new(1_700_000_000 + i as i32, i * 1000),
            frame_id: "cam".into(),
        },
        height: 4,
        width: 8 + i,
        encoding: "rgb8".into(),
        is_bigendian: 0,
        step: (8 + i) * 3,
        data: (0..(8 + i) * 3 * 4).map(|j| (j * 7 + i) as u8).collect(),
    }
}

fn camera_info(i: u32) -> CameraInfo {
    CameraInfo {
        header: Header { stamp: Time::new(1_700_000_000, i), frame_id: "cam".into() },
        height: 480,
        width: 640,
        distortion_model: "plumb_bob".into(),
        d: vec![0.1 * f64::from(i), -0.2, 0.0, 0.0, 0.01],
        k: [600.0 + f64::from(i), 0.0, 320.0, 0.0, 600.0, 240.0, 0.0, 0.0, 1.0],
        r: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        p: [600.0, 0.0, 320.0, 0.0, 0.0, 600.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        ..Default::default()
    }
}

fn ros_track<M: RosMessage>(publisher: &str, track: &str, frame_encoding: &str) -> TrackMeta {
    TrackMeta {
        publisher: publisher.into(),
        track: track.into(),
        schema_name: Some(M::TYPE_NAME.into()),
        schema_encoding: Some("ros2msg".into()),
        schema_text: Some(M::DEFINITION.into()),
        frame_encoding: Some(frame_encoding.into()),
    }
}

fn config(dir: &Path) -> RecorderConfig {
    let mut config = RecorderConfig::new(dir, "lab", "operator");
    config.flush_interval = Duration::from_millis(200);
    config
}

/// One message as the `mcap` crate reads it.
#[derive(Debug, Clone)]
struct Msg {
    topic: String,
    encoding: String,
    schema_name: Option<String>,
    schema_encoding: Option<String>,
    metadata: BTreeMap<String, String>,
    log_time: u64,
    publish_time: u64,
    data: Vec<u8>,
}

/// A complete file as the `mcap` crate sees it.
struct Read {
    profile: String,
    messages: Vec<Msg>,
}

/// Reads a complete, indexed file: linear (every message) and indexed (the summary's
/// counts, each chunk's message indexes) must agree.
fn read_complete(path: &Path) -> Read {
    let bytes = std::fs::read(path).unwrap();
    let profile = match mcap::read::LinearReader::new(&bytes).unwrap().next() {
        Some(Ok(mcap::records::Record::Header(header))) => header.profile,
        other => panic!("{}: no header: {other:?}", path.display()),
    };
    let messages: Vec<Msg> = mcap::MessageStream::new(&bytes)
        .unwrap()
        .map(|m| {
            let m = m.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            Msg {
                topic: m.channel.topic.clone(),
                encoding: m.channel.message_encoding.clone(),
                schema_name: m.channel.schema.as_ref().map(|s| s.name.clone()),
                schema_encoding: m.channel.schema.as_ref().map(|s| s.encoding.clone()),
                metadata: m.channel.metadata.clone(),
                log_time: m.log_time,
                publish_time: m.publish_time,
                data: m.data.into_owned(),
            }
        })
        .collect();
    let summary = mcap::Summary::read(&bytes)
        .unwrap()
        .unwrap_or_else(|| panic!("{}: no summary", path.display()));
    let stats = summary.stats.clone().expect("statistics");
    assert_eq!(stats.message_count, messages.len() as u64, "{}", path.display());
    let mut indexed = 0;
    for chunk in &summary.chunk_indexes {
        let from_chunk = summary.stream_chunk(&bytes, chunk).unwrap().count();
        // A chunk of only schema and channel records (a schema larger than the chunk size)
        // has no message indexes.
        let from_indexes: usize = if chunk.message_index_offsets.is_empty() {
            0
        } else {
            summary.read_message_indexes(&bytes, chunk).unwrap().values().map(Vec::len).sum()
        };
        assert_eq!(
            from_chunk,
            from_indexes,
            "{}: chunk at {}",
            path.display(),
            chunk.chunk_start_offset
        );
        indexed += from_chunk;
    }
    assert_eq!(indexed, messages.len(), "{}", path.display());
    Read { profile, messages }
}

// ------------------------------------------------------------------ Python readers

/// The Python view agrees with the Rust one: the same messages (topic, times, bytes) in
/// the same order, a summary, and the same profile.
fn assert_python_agrees(py: &Value, rust: &Read, file: &Path) {
    assert_eq!(py["profile"], rust.profile.as_str(), "{}", file.display());
    assert_eq!(py["has_summary"], true, "{}", file.display());
    let messages = py["messages"].as_array().unwrap();
    assert_eq!(messages.len(), rust.messages.len(), "{}", file.display());
    for (p, r) in messages.iter().zip(&rust.messages) {
        assert_eq!(p["topic"], r.topic.as_str());
        assert_eq!(p["log_time"], r.log_time);
        assert_eq!(p["publish_time"], r.publish_time);
        assert_eq!(p["sha256"], sha256(&r.data).as_str());
    }
}

// ------------------------------------------------------------------ typed ROS 2 tracks

#[test]
fn a_recorder_can_move_to_a_blocking_thread() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<Recorder>();
}

#[test]
fn ros2_tracks_make_a_ros2_profile_file_that_every_reader_decodes() {
    let dir = TempDir::new("ros2");
    let mut recorder = Recorder::open(config(&dir.0)).unwrap();
    let color = recorder.add_track(ros_track::<Image>("robot", "/camera/color/image_raw", "cdr"));
    let info =
        recorder.add_track(ros_track::<CameraInfo>("robot", "/camera/color/camera_info", "cdr"));
    let packed =
        recorder.add_track(ros_track::<Image>("robot", "/camera/depth/image_raw", "cdr+zstd"));
    assert_eq!(
        recorder.add_track(ros_track::<Image>("robot", "/camera/color/image_raw", "cdr")),
        color
    );
    let base = now_ns();
    let mut expected = Vec::new();
    for i in 0..5u32 {
        let t = base + u64::from(i) * 1_000_000;
        let stamp_ms = 1_700_000_000_000 + u64::from(i);
        let img = image(i).to_cdr();
        recorder.write(color, &img, t, Some(stamp_ms * 1_000_000)).unwrap();
        expected.push(("/camera/color/image_raw", img.clone(), t, stamp_ms));
        let cam = camera_info(i).to_cdr();
        recorder.write(info, &cam, t + 1, Some(stamp_ms * 1_000_000)).unwrap();
        expected.push(("/camera/color/camera_info", cam, t + 1, stamp_ms));
        let depth = image(100 + i).to_cdr();
        recorder.write(packed, &zstd_compress(&depth, 3).unwrap(), t + 2, None).unwrap();
        expected.push(("/camera/depth/image_raw", depth, t + 2, (t + 2) / 1_000_000));
    }
    let stats = recorder.stats();
    assert_eq!(stats.tracks.len(), 3);
    assert!(stats.tracks.iter().all(|t| t.frames == 5));
    let summary = recorder.finish().unwrap();
    assert_eq!(summary.files.len(), 1);
    assert_eq!(summary.files[0].status, FileStatus::Complete);
    assert_eq!(summary.files[0].messages, 15);
    let path = &summary.files[0].path;
    assert_eq!(dir.files(), vec![path.clone()]);
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(
        name.ends_with("_lab_operator_0.mcap") && name.len() == "YYYYMMDD-HHMMSS".len() + 20,
        "{name}"
    );

    let read = read_complete(path);
    assert_eq!(read.profile, "ros2");
    assert_eq!(read.messages.len(), expected.len());
    for (m, (topic, data, log, stamp_ms)) in read.messages.iter().zip(&expected) {
        assert_eq!(m.topic, *topic);
        assert_eq!(m.encoding, "cdr");
        assert_eq!(m.schema_encoding.as_deref(), Some("ros2msg"));
        assert_eq!(&m.data, data, "{topic}: stored decompressed, byte-identical");
        assert_eq!(m.log_time, *log);
        if topic.contains("depth") {
            assert_eq!(m.publish_time, *log, "no user timestamp: publish time = receive time");
        } else {
            assert_eq!(m.publish_time, stamp_ms * 1_000_000);
        }
        assert!(m.metadata["offered_qos_profiles"].contains("reliability: reliable"));
        let hash =
            if topic.ends_with("camera_info") { CameraInfo::TYPE_HASH } else { Image::TYPE_HASH };
        assert_eq!(m.metadata["topic_type_hash"], hash);
    }
    assert_eq!(Image::from_cdr(&read.messages[0].data).unwrap(), image(0));

    let Some(python) = python("ros2_tracks_make_a_ros2_profile_file_that_every_reader_decodes")
    else {
        return;
    };
    let py = read_mcap(&python, path);
    assert_python_agrees(&py, &read, path);
    let metadata = py["metadata"].as_array().unwrap();
    assert_eq!(metadata[0]["metadata"]["room"], "lab");
    let check_image = |decoded: &Value, i: u32| {
        let img = image(i);
        assert_eq!(decoded["width"], img.width);
        assert_eq!(decoded["height"], img.height);
        assert_eq!(decoded["encoding"], "rgb8");
        assert_eq!(decoded["data"]["sha256"], sha256(&img.data).as_str());
        assert_eq!(decoded["header"]["frame_id"], "cam");
    };
    let check_info = |decoded: &Value, i: u32| {
        let cam = camera_info(i);
        assert_eq!(decoded["k"], serde_json::json!(cam.k));
        assert_eq!(decoded["d"], serde_json::json!(cam.d));
        assert_eq!(decoded["distortion_model"], "plumb_bob");
    };
    for (n, m) in py["messages"].as_array().unwrap().iter().enumerate() {
        let i = (n / 3) as u32;
        let decoded = &m["decoded"];
        assert!(decoded.is_object(), "mcap-ros2-support did not decode: {m}");
        match n % 3 {
            0 => check_image(decoded, i),
            1 => check_info(decoded, i),
            _ => check_image(decoded, 100 + i),
        }
    }
    let rosbags = &py["rosbags"];
    assert!(rosbags.get("error").is_none(), "rosbags: {}", rosbags["error"]);
    let bag = rosbags["messages"].as_array().unwrap();
    assert_eq!(bag.len(), 15);
    // rosbags computes the type hash from the stored definition: it matches topic_type_hash.
    assert_eq!(rosbags["type_hashes"][Image::TYPE_NAME], Image::TYPE_HASH);
    assert_eq!(rosbags["type_hashes"][CameraInfo::TYPE_NAME], CameraInfo::TYPE_HASH);
    for (n, m) in bag.iter().enumerate() {
        let i = (n / 3) as u32;
        match n % 3 {
            0 => check_image(&m["decoded"], i),
            1 => check_info(&m["decoded"], i),
            _ => check_image(&m["decoded"], 100 + i),
        }
    }
}

// ------------------------------------------------------------------ bad input

#[test]
fn bad_input_is_counted_and_the_rest_is_recorded() {
    let dir = TempDir::new("bad");
    let mut cfg = config(&dir.0);
    cfg.room = "../../evil/room".into();
    cfg.identity = "a/b\0c".into();
    let mut recorder = Recorder::open(cfg).unwrap();
    let raw = recorder.add_track(TrackMeta {
        publisher: "robot".into(),
        track: "/raw".into(),
        ..Default::default()
    });
    let json = recorder.add_track(TrackMeta {
        publisher: "robot".into(),
        track: "/status".into(),
        frame_encoding: Some("json".into()),
        ..Default::default()
    });
    let mut missing = ros_track::<Image>("robot", "/no_schema", "cdr");
    missing.schema_text = None;
    let missing = recorder.add_track(missing);
    let packed = recorder.add_track(ros_track::<Image>("robot", "/packed", "cdr+zstd"));
    let alice = recorder.add_track(ros_track::<CameraInfo>("alice", "/shared", "cdr"));
    let bob = recorder.add_track(ros_track::<CameraInfo>("bob", "/shared", "cdr"));
    // Different names, the same topic once sanitized.
    let dotted = recorder.add_track(ros_track::<CameraInfo>("robot", "/c/../d", "cdr"));
    let plain = recorder.add_track(ros_track::<CameraInfo>("robot", "/c/_/d", "cdr"));
    let long_name = format!("/{}", "n".repeat(255));
    let hostile: Vec<(TrackId, &str)> =
        ["../../etc/passwd", "/a/../../b", "with\0nul", long_name.as_str(), "/", ".."]
            .into_iter()
            .map(|name| (recorder.add_track(ros_track::<CameraInfo>("robot", name, "cdr")), name))
            .collect();

    let t = now_ns();
    let raw_frames = [vec![0u8, 1, 2, 255], vec![], noise(1, 1000)];
    for (i, frame) in raw_frames.iter().enumerate() {
        recorder.write(raw, frame, t + i as u64, Some(5_000_000)).unwrap();
    }
    recorder.write(json, br#"{"battery": 0.5}"#, t + 10, None).unwrap();
    let cdr = image(1).to_cdr();
    recorder.write(missing, &cdr, t + 20, None).unwrap();
    recorder.write(missing, &cdr, t + 21, None).unwrap();
    let good = zstd_compress(&cdr, 3).unwrap();
    recorder.write(packed, &good, t + 30, None).unwrap();
    recorder.write(packed, &good[..good.len() / 2], t + 31, None).unwrap(); // cut off mid-frame
    recorder.write(packed, b"not zstd", t + 32, None).unwrap();
    recorder.write(packed, &good, t + 33, None).unwrap();
    let cam = camera_info(0).to_cdr();
    for (i, id) in [alice, bob, dotted, plain].into_iter().enumerate() {
        recorder.write(id, &cam, t + 40 + i as u64, None).unwrap();
    }
    for (i, (id, _)) in hostile.iter().enumerate() {
        recorder.write(*id, &cam, t + 50 + i as u64, None).unwrap();
    }

    let stats = recorder.stats();
    assert_eq!(stats.dropped.decompress, 2);
    assert_eq!(stats.frames_without_schema, 2);
    assert!(stats.renamed_tracks >= 5, "{stats:?}");
    let packed_stats = stats.tracks.iter().find(|t| t.track == "/packed").unwrap();
    assert_eq!((packed_stats.frames, packed_stats.decompress_failures), (2, 2));
    let summary = recorder.finish().unwrap();
    let path = &summary.files[0].path;
    assert_eq!(dir.files(), vec![path.clone()], "one file, inside the output directory");
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(!name.contains("..") && !name.contains('\0'), "{name}");

    let read = read_complete(path);
    assert_eq!(read.profile, "", "raw and json channels: no ros2 profile");
    let on =
        |topic: &str| -> Vec<&Msg> { read.messages.iter().filter(|m| m.topic == topic).collect() };
    let raws = on("/raw");
    assert_eq!(raws.len(), 3);
    for (m, frame) in raws.iter().zip(&raw_frames) {
        assert_eq!(&m.data, frame);
        assert_eq!(m.encoding, RAW_MESSAGE_ENCODING);
        assert_eq!(m.schema_name, None);
        assert_eq!(m.publish_time, 5_000_000);
    }
    assert_eq!(on("/status")[0].encoding, "json");
    assert_eq!(on("/status")[0].schema_name, None);
    let no_schema = on("/no_schema");
    assert_eq!(no_schema.len(), 2);
    assert_eq!(no_schema[0].schema_name.as_deref(), Some(Image::TYPE_NAME));
    assert_eq!(no_schema[0].schema_encoding.as_deref(), Some(""));
    assert_eq!(no_schema[0].data, cdr);
    assert_eq!(on("/packed").len(), 2);
    assert!(on("/packed").iter().all(|m| m.data == cdr));
    assert_eq!(on("/alice/shared").len(), 1, "a shared track name: prefixed");
    assert_eq!(on("/bob/shared").len(), 1, "a shared track name: prefixed");
    assert_eq!(on("/c/_/d").len(), 1);
    assert_eq!(on("/c/_/d_2").len(), 1, "a sanitized name that collides gets a suffix");
    let topics: Vec<&str> = read.messages.iter().map(|m| m.topic.as_str()).collect();
    for topic in &topics {
        assert!(!topic.contains('\0'), "{topic:?}");
        assert!(!topic.split('/').any(|s| s == ".." || s == "."), "{topic:?}");
        assert!(topic.chars().count() <= MAX_TOPIC_CHARS, "{topic:?}");
    }
    assert!(topics.contains(&"_/_/etc/passwd"), "{topics:?}");
    assert!(topics.contains(&"with_nul"), "{topics:?}");
    let unique: std::collections::BTreeSet<&str> =
        read.messages.iter().filter(|m| m.encoding == "cdr").map(|m| m.topic.as_str()).collect();
    assert_eq!(unique.len(), 2 + 4 + hostile.len(), "every track its own topic: {unique:?}");

    let Some(python) = python("bad_input_is_counted_and_the_rest_is_recorded") else { return };
    let py = read_mcap(&python, path);
    assert_python_agrees(&py, &read, path);
    let decoded = py["messages"].as_array().unwrap().iter().filter(|m| m["decoded"].is_object());
    assert_eq!(decoded.count(), 2 + 4 + hostile.len(), "the packed and CameraInfo messages decode");
}

#[test]
fn a_changed_track_gets_a_new_channel_on_the_same_topic() {
    let dir = TempDir::new("changed");
    let mut recorder = Recorder::open(config(&dir.0)).unwrap();
    let mut meta = ros_track::<Image>("robot", "/cam", "cdr");
    meta.schema_text = None;
    let first = recorder.add_track(meta.clone());
    recorder.write(first, &image(0).to_cdr(), 1, None).unwrap();
    // The schema text arrives later: same id, a new (typed) channel.
    let second = recorder.add_track(ros_track::<Image>("robot", "/cam", "cdr"));
    assert_eq!(first, second);
    recorder.write(second, &image(1).to_cdr(), 2, None).unwrap();
    let summary = recorder.finish().unwrap();
    let read = read_complete(&summary.files[0].path);
    assert_eq!(read.messages.len(), 2);
    assert!(read.messages.iter().all(|m| m.topic == "/cam"));
    assert_eq!(read.messages[0].schema_encoding.as_deref(), Some(""));
    assert_eq!(read.messages[1].schema_encoding.as_deref(), Some("ros2msg"));
}

#[test]
fn the_profile_changes_in_place_when_a_non_ros_track_joins() {
    let dir = TempDir::new("profile");
    let mut recorder = Recorder::open(config(&dir.0)).unwrap();
    let path = recorder.stats().file.unwrap();
    let info = recorder.add_track(ros_track::<CameraInfo>("robot", "/info", "cdr"));
    recorder.write(info, &camera_info(0).to_cdr(), 1, None).unwrap();
    std::thread::sleep(Duration::from_millis(250));
    recorder.tick().unwrap(); // flushed: the header is on disk
    let on_disk = |path: &Path| -> (String, String) {
        let bytes = std::fs::read(path).unwrap();
        match mcap::read::LinearReader::sans_magic(&bytes[8..]).next() {
            Some(Ok(mcap::records::Record::Header(h))) => (h.profile, h.library),
            other => panic!("{other:?}"),
        }
    };
    let (profile, library) = on_disk(&path);
    assert_eq!(profile, "ros2");
    let raw = recorder.add_track(TrackMeta {
        publisher: "robot".into(),
        track: "/raw".into(),
        ..Default::default()
    });
    recorder.write(raw, b"bytes", 2, None).unwrap();
    let (profile, patched) = on_disk(&path);
    assert_eq!(profile, "", "rewritten before the raw channel is written");
    assert_eq!(patched.trim_end(), library);
    let summary = recorder.finish().unwrap();
    let read = read_complete(&summary.files[0].path);
    assert_eq!(read.profile, "");
    assert_eq!(read.messages.len(), 2);
    let Some(python) = python("the_profile_changes_in_place_when_a_non_ros_track_joins") else {
        return;
    };
    assert_python_agrees(&read_mcap(&python, &path), &read, &path);
}

// ------------------------------------------------------------------ rotation

#[test]
fn rotation_by_size_never_overwrites_and_every_file_is_complete() {
    let dir = TempDir::new("size");
    let precious = dir.0.join("lab_0.mcap");
    std::fs::write(&precious, b"not mine").unwrap();
    let mut cfg = config(&dir.0);
    cfg.file_template = "{room}_{index}".into();
    cfg.max_file_bytes = Some(64 * 1024);
    cfg.chunk_size = 16 * 1024;
    let mut recorder = Recorder::open(cfg).unwrap();
    let track = recorder.add_track(TrackMeta {
        publisher: "robot".into(),
        track: "/noise".into(),
        ..Default::default()
    });
    let t = now_ns();
    for i in 0..100u64 {
        recorder.write(track, &noise(i, 4000), t + i, None).unwrap();
    }
    let summary = recorder.finish().unwrap();
    assert_eq!(std::fs::read(&precious).unwrap(), b"not mine", "never overwrites");
    assert!(summary.files.len() >= 6, "{:?}", summary.files);
    assert_eq!(summary.files[0].path, dir.0.join("lab_0-1.mcap"));
    assert_eq!(summary.files[1].path, dir.0.join("lab_1.mcap"));
    let python = python("rotation_by_size_never_overwrites_and_every_file_is_complete");
    let mut next = 0u64;
    for file in &summary.files {
        assert_eq!(file.status, FileStatus::Complete);
        let size = std::fs::metadata(&file.path).unwrap().len();
        assert!(size <= 64 * 1024 + 4096, "{}: {size} bytes", file.path.display());
        let read = read_complete(&file.path);
        for m in &read.messages {
            assert_eq!(m.data, noise(next, 4000), "message {next} in order, intact");
            next += 1;
        }
        if let Some(python) = &python {
            assert_python_agrees(&read_mcap(python, &file.path), &read, &file.path);
        }
    }
    assert_eq!(next, 100);
}

#[test]
fn rotation_by_duration() {
    let dir = TempDir::new("duration");
    let mut cfg = config(&dir.0);
    cfg.max_file_duration = Some(Duration::from_millis(300));
    let mut recorder = Recorder::open(cfg).unwrap();
    let track = recorder.add_track(ros_track::<CameraInfo>("robot", "/info", "cdr"));
    let start = Instant::now();
    let mut sent = 0u32;
    while start.elapsed() < Duration::from_millis(1100) {
        recorder.write(track, &camera_info(sent).to_cdr(), now_ns(), None).unwrap();
        recorder.tick().unwrap();
        sent += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let summary = recorder.finish().unwrap();
    assert!((3..=5).contains(&summary.files.len()), "{:?}", summary.files);
    let python = python("rotation_by_duration");
    let mut next = 0;
    for file in &summary.files {
        let read = read_complete(&file.path);
        assert_eq!(read.profile, "ros2");
        assert!(!read.messages.is_empty());
        let span = read.messages.last().unwrap().log_time - read.messages[0].log_time;
        assert!(span < 400_000_000, "{}: {span} ns", file.path.display());
        for m in &read.messages {
            assert_eq!(CameraInfo::from_cdr(&m.data).unwrap(), camera_info(next));
            next += 1;
        }
        if let Some(python) = &python {
            let py = read_mcap(python, &file.path);
            assert_python_agrees(&py, &read, &file.path);
            assert!(py["rosbags"].get("error").is_none(), "{}", py["rosbags"]);
        }
    }
    assert_eq!(next, sent);
}

// ------------------------------------------------------------------ errors

#[test]
fn bad_config_and_paths_are_clear_errors() {
    let dir = TempDir::new("config");
    let mut cfg = config(&dir.0);
    cfg.file_template = "{date}_{nope}.mcap".into();
    let err = Recorder::open(cfg).err().expect("unknown placeholder");
    assert!(matches!(err, RecorderError::Config(ref m) if m.contains("{nope}")), "{err}");
    let mut cfg = config(&dir.0);
    cfg.flush_interval = Duration::from_secs(2);
    assert!(matches!(Recorder::open(cfg), Err(RecorderError::Config(_))));
    let blocker = dir.0.join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let err = Recorder::open(config(&blocker.join("sub"))).err().expect("not a directory");
    assert!(err.to_string().contains(&blocker.display().to_string()), "{err}");

    let junk = dir.0.join("junk.mcap");
    std::fs::write(&junk, b"definitely not mcap").unwrap();
    let err = repair(&junk, &dir.0.join("out.mcap")).unwrap_err();
    assert!(matches!(err, RepairError::NotMcap { .. }), "{err}");
    let err = repair(&junk, &blocker).unwrap_err();
    assert!(matches!(err, RepairError::NotMcap { .. } | RepairError::Output { .. }), "{err}");
}

#[test]
fn repair_turns_any_cut_of_a_recording_into_a_complete_prefix() {
    let dir = TempDir::new("repair");
    let mut cfg = config(&dir.0);
    cfg.chunk_size = 1024;
    cfg.file_template = "whole".into();
    let mut recorder = Recorder::open(cfg).unwrap();
    let info = recorder.add_track(ros_track::<CameraInfo>("robot", "/info", "cdr"));
    let raw = recorder.add_track(TrackMeta {
        publisher: "robot".into(),
        track: "/raw".into(),
        ..Default::default()
    });
    let mut sent = Vec::new();
    for i in 0..60u32 {
        let (track, data) = if i % 4 == 3 {
            (raw, noise(u64::from(i), 300))
        } else {
            (info, camera_info(i).to_cdr())
        };
        recorder.write(track, &data, 1_000 + u64::from(i), Some(u64::from(i))).unwrap();
        sent.push(data);
    }
    let whole = recorder.finish().unwrap().files[0].path.clone();
    let bytes = std::fs::read(&whole).unwrap();

    let report = repair(&whole, &dir.0.join("copy.mcap")).unwrap();
    assert!(report.input_complete && report.stopped.is_none(), "{report:?}");
    assert_eq!((report.messages, report.channels, report.schemas), (60, 2, 1));
    assert_eq!(read_complete(&dir.0.join("copy.mcap")).messages.len(), 60);

    let mut best = 0;
    for (n, cut) in (100..bytes.len()).step_by(97).enumerate() {
        let cut_path = dir.0.join(format!("cut{n}.mcap"));
        let mut data = bytes[..cut].to_vec();
        if n % 2 == 1 {
            data.extend_from_slice(&[0; 64]); // what a power loss may leave
        }
        std::fs::write(&cut_path, &data).unwrap();
        let out = dir.0.join(format!("fixed{n}.mcap"));
        let report = repair(&cut_path, &out).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        let read = read_complete(&out);
        assert_eq!(read.messages.len() as u64, report.messages);
        for (m, data) in read.messages.iter().zip(&sent) {
            assert_eq!(&m.data, data, "cut {cut}");
        }
        assert!(report.messages >= best, "cut {cut}: a longer file never gives fewer");
        best = report.messages;
        std::fs::remove_file(&cut_path).unwrap();
        std::fs::remove_file(&out).unwrap();
    }
    assert!(best >= 50, "{best}");
}

// ------------------------------------------------------------------ child processes

const CHILD_ENV: &str = "DTBRIDGE_RECORDER_CHILD";

/// Runs the ignored test `name` of this binary in a child process with `CHILD_ENV=dir`,
/// through `sh -c script` (`script` ends by exec-ing the test binary given as "$0").
fn child(name: &str, dir: &Path, script: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .arg(exe)
        .args([name, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Records CameraInfo frames at 50 Hz, logging `index receive_ns` per frame, until killed.
#[test]
#[ignore = "a child process of crash_recovery_after_sigkill"]
fn child_records_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else { return };
    let dir = PathBuf::from(dir);
    let mut cfg = config(&dir.join("rec"));
    cfg.flush_interval = Duration::from_millis(500);
    cfg.file_template = "crash".into();
    let mut recorder = Recorder::open(cfg).unwrap();
    let track = recorder.add_track(ros_track::<CameraInfo>("robot", "/info", "cdr"));
    let mut log = std::fs::File::create(dir.join("sent.log")).unwrap();
    for i in 0.. {
        let t = now_ns();
        recorder.write(track, &camera_info(i).to_cdr(), t, Some(t / 1_000_000)).unwrap();
        writeln!(log, "{i} {t}").unwrap();
        recorder.tick().unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn crash_recovery_after_sigkill() {
    let dir = TempDir::new("crash");
    let mut process =
        child("child_records_until_killed", &dir.0, r#"exec "$0" "$@""#).spawn().unwrap();
    let log_path = dir.0.join("sent.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    let first_ns = loop {
        assert!(Instant::now() < deadline, "the child never started recording");
        if let Some(line) = std::fs::read_to_string(&log_path)
            .ok()
            .and_then(|s| s.lines().next().map(str::to_string))
        {
            break line.split(' ').nth(1).unwrap().parse::<u64>().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    while now_ns() < first_ns + 2_700_000_000 {
        std::thread::sleep(Duration::from_millis(10));
    }
    process.kill().unwrap(); // SIGKILL
    let kill_ns = now_ns();
    _ = process.wait();
    let sent: Vec<(u32, u64)> = std::fs::read_to_string(&log_path)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (i, t) = l.split_once(' ')?;
            Some((i.parse().ok()?, t.parse().ok()?))
        })
        .collect();
    assert!(sent.len() > 100, "{} frames", sent.len());

    let killed = dir.0.join("rec/crash.mcap");
    let bytes = std::fs::read(&killed).unwrap();
    assert!(mcap::Summary::read(&bytes).is_err() || mcap::Summary::read(&bytes).unwrap().is_none());
    let repaired = dir.0.join("repaired.mcap");
    let report = repair(&killed, &repaired).unwrap();
    assert!(!report.input_complete);
    assert_eq!(report.profile, "ros2");
    assert_eq!((report.schemas, report.channels, report.metadata), (1, 1, 1));
    assert!(repair(&killed, &repaired).is_err(), "repair never overwrites");
    let read = read_complete(&repaired);
    assert_eq!(read.profile, "ros2");
    assert_eq!(read.messages.len() as u64, report.messages);
    for (i, m) in read.messages.iter().enumerate() {
        assert_eq!(CameraInfo::from_cdr(&m.data).unwrap(), camera_info(i as u32));
        assert_eq!(m.log_time, sent[i].1);
    }
    let must = sent.iter().filter(|(_, t)| *t + 1_000_000_000 <= kill_ns).count();
    assert!(
        read.messages.len() >= must,
        "recovered {} of {must} older than 1 s",
        read.messages.len()
    );
    let newest = read.messages.last().map_or(0, |m| m.log_time);
    _ = writeln!(
        std::io::stderr(),
        "crash recovery: {} of {} frames recovered; the newest was {} ms old at the SIGKILL",
        read.messages.len(),
        sent.len(),
        (kill_ns - newest) / 1_000_000
    );

    let Some(python) = python("crash_recovery_after_sigkill") else { return };
    let py = read_mcap(&python, &repaired);
    assert_python_agrees(&py, &read, &repaired);
    assert!(py["rosbags"].get("error").is_none(), "{}", py["rosbags"]);
    // The killed file itself is readable by a linear reader up to its last complete chunk.
    let py_killed = read_mcap(&python, &killed);
    assert_eq!(py_killed["has_summary"], false);
    assert_eq!(py_killed["messages"].as_array().unwrap().len(), read.messages.len());
}

/// The file size limit of this process (`ulimit -f`), from /proc.
fn file_size_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max file size"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Writes incompressible frames under a file size limit until the write fails.
#[test]
#[ignore = "a child process of a_full_disk_seals_the_file"]
fn child_fills_the_disk() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else { return };
    let dir = PathBuf::from(dir);
    let limit = file_size_limit().expect("a file size limit");
    let mut cfg = config(&dir);
    cfg.chunk_size = 32 * 1024;
    cfg.file_template = "full".into();
    let mut recorder = Recorder::open(cfg).unwrap();
    let track = recorder.add_track(ros_track::<Image>("robot", "/img", "cdr"));
    let mut error = None;
    let mut accepted = 0u32;
    for i in 0..10_000u32 {
        let mut img = image(0);
        img.data = noise(u64::from(i), 8000);
        match recorder.write(track, &img.to_cdr(), u64::from(i) + 1, None) {
            Ok(()) => accepted += 1,
            Err(WriteError::File(err)) => {
                error = Some(err.to_string());
                break;
            }
        }
    }
    let error = error.expect("the write fails at the size limit");
    for _ in 0..3 {
        recorder.write(track, &image(0).to_cdr(), 1, None).unwrap(); // dropped, not an error
    }
    let stats = recorder.stats();
    // After the retry delay the recording resumes in a new file (this one has room).
    std::thread::sleep(RETRY_AFTER_ERROR + Duration::from_millis(100));
    for i in 0..3 {
        recorder.write(track, &image(i).to_cdr(), 1, None).unwrap();
    }
    let summary = recorder.finish().unwrap();
    assert_eq!(summary.files.len(), 2);
    assert_eq!(summary.files[1].status, FileStatus::Complete);
    assert_eq!(summary.files[1].messages, 3);
    assert_eq!(summary.files[1].path, dir.join("full-1.mcap"));
    let report = &summary.files[0];
    println!(
        "RESULT {}",
        serde_json::json!({
            "limit": limit,
            "error": error,
            "accepted": accepted,
            "dropped_io": stats.dropped.io,
            "messages": report.messages,
            "status": format!("{:?}", report.status),
            "path": report.path,
        })
    );
}

#[test]
fn a_full_disk_seals_the_file() {
    let dir = TempDir::new("full");
    // SIGXFSZ ignored (inherited through exec), so the write fails with EFBIG instead.
    let script = r#"trap '' XFSZ; ulimit -f 600; exec "$0" "$@""#;
    let out = child("child_fills_the_disk", &dir.0, script).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let result: Value = stdout
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, json)| json))
        .map(|json| serde_json::from_str(json).unwrap())
        .unwrap_or_else(|| {
            panic!("no RESULT line: {stdout}\n{}", String::from_utf8_lossy(&out.stderr))
        });
    let path = PathBuf::from(result["path"].as_str().unwrap());
    let error = result["error"].as_str().unwrap();
    assert!(error.contains(&path.display().to_string()), "names the file: {error}");
    assert!(error.contains("File too large") || error.contains("os error 27"), "{error}");
    assert!(result["status"].as_str().unwrap().starts_with("Sealed"), "{result}");
    let (accepted, kept) =
        (result["accepted"].as_u64().unwrap(), result["messages"].as_u64().unwrap());
    assert_eq!(
        result["dropped_io"].as_u64().unwrap(),
        accepted - kept + 1 + 3,
        "lost in the failed chunk, the failing frame, the 3 frames after"
    );
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size <= result["limit"].as_u64().unwrap(), "{size} bytes");

    let read = read_complete(&path);
    assert_eq!(read.profile, "ros2");
    assert_eq!(read.messages.len() as u64, result["messages"].as_u64().unwrap());
    assert!(read.messages.len() > 10, "{}", read.messages.len());
    for (i, m) in read.messages.iter().enumerate() {
        assert_eq!(Image::from_cdr(&m.data).unwrap().data, noise(i as u64, 8000));
    }
    _ = writeln!(
        std::io::stderr(),
        "full disk: {} of {} accepted frames kept in the sealed file ({size} bytes)",
        read.messages.len(),
        result["accepted"]
    );
    let Some(python) = python("a_full_disk_seals_the_file") else { return };
    let py = read_mcap(&python, &path);
    assert_python_agrees(&py, &read, &path);
    assert!(py["rosbags"].get("error").is_none(), "{}", py["rosbags"]);
    assert_eq!(py["rosbags"]["messages"].as_array().unwrap().len(), read.messages.len());
}
