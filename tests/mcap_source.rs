//! The `mcap` replay source (`dtbridge::source::mcap`), on ROS 2 MCAP files written here with
//! the `mcap` crate: byte-identical payloads in log-time order with their schemas, the topic
//! filter, real-time pacing, looping, shutdown, and clear errors for bad files.

mod common;

use common::string_cdr;
use dtbridge::codec::ros::{CameraInfo, Header, Image, Time};
use dtbridge::codec::{MESSAGE_ENCODING, RosMessage, SCHEMA_ENCODING};
use dtbridge::source::mcap::{McapSource, McapSourceConfig};
use dtbridge::source::{Payload, Sample, Source, SourceError};
use dtbridge::topic::Patterns;
use mcap::records::MessageHeader;
use mcap::{Compression, WriteOptions};
use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

const IMAGE: &str = "/camera/color/image_raw";
const INFO: &str = "/camera/color/camera_info";
const CHATTER: &str = "/chatter";
const STRING_TYPE: &str = "std_msgs/msg/String";
const STRING_DEFINITION: &str = "string data\n";
/// 2023-11-14T22:13:20Z.
const BASE_NS: u64 = 1_700_000_000_000_000_000;

/// One message to write.
#[derive(Debug, Clone)]
struct Msg {
    topic: &'static str,
    log_time: u64,
    publish_time: u64,
    data: Vec<u8>,
}

/// How the file is laid out.
#[derive(Clone, Copy)]
struct Layout {
    /// Chunk size in bytes; `None`: no chunks (and so no chunk index).
    chunk_size: Option<u64>,
    compression: Option<Compression>,
}

const ZSTD_SMALL_CHUNKS: Layout =
    Layout { chunk_size: Some(512), compression: Some(Compression::Zstd) };
const PLAIN_SMALL_CHUNKS: Layout = Layout { chunk_size: Some(512), compression: None };
const UNCHUNKED: Layout = Layout { chunk_size: None, compression: None };

fn type_of(topic: &str) -> (&'static str, &'static str) {
    match topic {
        IMAGE => (Image::TYPE_NAME, Image::DEFINITION),
        INFO => (CameraInfo::TYPE_NAME, CameraInfo::DEFINITION),
        _ => (STRING_TYPE, STRING_DEFINITION),
    }
}

fn header(stamp_ns: u64) -> Header {
    Header {
        stamp: Time::from_nanos(stamp_ns as i64),
        frame_id: "camera_color_optical_frame".into(),
    }
}

/// `rounds` rounds of image + camera info (publish time = header stamp) and chatter (publish
/// time 0), `gap_ns` apart.
fn camera_messages(rounds: u64, gap_ns: u64) -> Vec<Msg> {
    let mut out = Vec::new();
    for i in 0..rounds {
        let t = BASE_NS + i * gap_ns;
        let image = Image {
            header: header(t),
            height: 2,
            width: 3,
            encoding: "rgb8".into(),
            is_bigendian: 0,
            step: 9,
            data: (0..18).map(|b| (b as u64 * 7 + i) as u8).collect(),
        };
        let info = CameraInfo {
            header: header(t),
            height: 2,
            width: 3,
            distortion_model: "plumb_bob".into(),
            d: vec![0.1, -0.2, 0.0, 0.0, i as f64],
            k: [600.0, 0.0, 1.5, 0.0, 600.0, 1.0, 0.0, 0.0, 1.0],
            ..Default::default()
        };
        out.push(Msg { topic: IMAGE, log_time: t + 1_000, publish_time: t, data: image.to_cdr() });
        out.push(Msg { topic: INFO, log_time: t + 2_000, publish_time: t, data: info.to_cdr() });
        let text = format!("message-{i}");
        out.push(Msg {
            topic: CHATTER,
            log_time: t + 3_000,
            publish_time: 0,
            data: string_cdr(&text),
        });
    }
    out
}

/// `count` chatter messages `gap_ns` apart.
fn chatter(count: u64, gap_ns: u64) -> Vec<Msg> {
    (0..count)
        .map(|i| Msg {
            topic: CHATTER,
            log_time: BASE_NS + i * gap_ns,
            publish_time: BASE_NS + i * gap_ns,
            data: string_cdr(&format!("message-{i}")),
        })
        .collect()
}

/// A ROS 2 MCAP file holding `messages` in the order given.
fn mcap_bytes(messages: &[Msg], layout: Layout) -> Vec<u8> {
    let mut options = WriteOptions::new()
        .profile("ros2")
        .library("dtbridge-tests")
        .compression(layout.compression)
        .use_chunks(layout.chunk_size.is_some());
    if let Some(size) = layout.chunk_size {
        options = options.chunk_size(Some(size));
    }
    let mut writer = options.create(Cursor::new(Vec::new())).expect("writer");
    let mut channels = HashMap::new();
    for (sequence, msg) in messages.iter().enumerate() {
        let channel_id = *channels.entry(msg.topic).or_insert_with(|| {
            let (name, definition) = type_of(msg.topic);
            let schema =
                writer.add_schema(name, SCHEMA_ENCODING, definition.as_bytes()).expect("schema");
            writer
                .add_channel(schema, msg.topic, MESSAGE_ENCODING, &BTreeMap::new())
                .expect("channel")
        });
        let header = MessageHeader {
            channel_id,
            sequence: sequence as u32,
            log_time: msg.log_time,
            publish_time: msg.publish_time,
        };
        writer.write_to_known_channel(&header, &msg.data).expect("write");
    }
    writer.finish().expect("finish");
    writer.into_inner().into_inner()
}

fn tmp_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("mcap_source-{name}.mcap"))
}

fn write_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = tmp_path(name);
    std::fs::write(&path, bytes).expect("write test file");
    path
}

fn config(path: &Path, realtime: bool, looping: bool, topics: &[&str]) -> McapSourceConfig {
    McapSourceConfig {
        name: "bag".into(),
        path: path.to_owned(),
        realtime,
        looping,
        topics: Patterns::new(topics).expect("valid patterns"),
    }
}

fn source(path: &Path, realtime: bool, looping: bool, topics: &[&str]) -> McapSource {
    McapSource::new(config(path, realtime, looping, topics), Path::new("/"))
}

struct Running {
    rx: mpsc::Receiver<Sample>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), SourceError>>,
}

fn start(source: McapSource, capacity: usize) -> Running {
    let (tx, rx) = mpsc::channel(capacity);
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(Box::new(source).run(tx, shutdown));
    Running { rx, stop, task }
}

/// Every sample until the source ends, and how it ended.
async fn play_all(source: McapSource) -> (Vec<Sample>, Result<(), SourceError>) {
    let mut running = start(source, 4);
    let mut samples = Vec::new();
    let collect = async {
        while let Some(sample) = running.rx.recv().await {
            samples.push(sample);
        }
    };
    tokio::time::timeout(Duration::from_secs(20), collect).await.expect("source never ended");
    let result = running.task.await.expect("run panicked");
    drop(running.stop);
    (samples, result)
}

fn bytes(sample: &Sample) -> &[u8] {
    match &sample.payload {
        Payload::Encoded(bytes) => bytes,
        other => panic!("expected encoded bytes, got {other:?}"),
    }
}

/// Checks `samples` against `expected`, in order: topic, bytes, type, encoding, stamp.
fn assert_samples(samples: &[Sample], expected: &[Msg]) {
    assert_eq!(samples.len(), expected.len(), "sample count");
    for (i, (sample, msg)) in samples.iter().zip(expected).enumerate() {
        assert_eq!(&*sample.topic, msg.topic, "topic of sample {i}");
        assert!(bytes(sample) == msg.data.as_slice(), "bytes of sample {i} ({})", msg.topic);
        let (name, definition) = type_of(msg.topic);
        assert_eq!(sample.message_type.name, name);
        assert_eq!(sample.message_type.schema_encoding, "ros2msg");
        assert_eq!(sample.message_type.definition, definition);
        assert_eq!(&*sample.encoding, "cdr");
        let stamp = if msg.publish_time != 0 { msg.publish_time } else { msg.log_time };
        assert_eq!(sample.stamp_ns, stamp, "stamp of sample {i}");
    }
}

fn sorted_by_log_time(messages: &[Msg]) -> Vec<Msg> {
    let mut sorted = messages.to_vec();
    sorted.sort_by_key(|m| m.log_time);
    sorted
}

#[test]
fn config_defaults_and_rejects_unknown_fields() {
    let config: McapSourceConfig =
        serde_json::from_str(r#"{"name": "bag", "path": "bags/run.mcap"}"#).expect("config");
    assert!(config.realtime);
    assert!(!config.looping);
    assert!(config.topics.is_empty());
    let config: McapSourceConfig = serde_json::from_str(
        r#"{"name": "bag", "path": "run.mcap", "realtime": false, "loop": true, "topics": ["/a/*"]}"#,
    )
    .expect("config");
    assert!(!config.realtime && config.looping);
    assert_eq!(config.topics.as_slice(), ["/a/*"]);
    let err = serde_json::from_str::<McapSourceConfig>(r#"{"name": "b", "path": "x", "speed": 2}"#)
        .expect_err("unknown field");
    assert!(err.to_string().contains("speed"), "{err}");
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let base = Path::new("/etc/dtbridge");
    let relative = McapSource::new(config(Path::new("bags/run.mcap"), true, false, &[]), base);
    assert_eq!(relative.path(), Path::new("/etc/dtbridge/bags/run.mcap"));
    let absolute = McapSource::new(config(Path::new("/data/run.mcap"), true, false, &[]), base);
    assert_eq!(absolute.path(), Path::new("/data/run.mcap"));
}

#[tokio::test]
async fn plays_every_message_byte_identical_in_log_time_order() {
    let messages = camera_messages(6, 50_000_000);
    // Written out of log-time order (rounds swapped pairwise) across small zstd chunks, so
    // chunks overlap in time and only the index restores the order.
    let mut written = Vec::new();
    for pair in messages.chunks(6) {
        written.extend_from_slice(&pair[3..]);
        written.extend_from_slice(&pair[..3]);
    }
    let path = write_file("ordered", &mcap_bytes(&written, ZSTD_SMALL_CHUNKS));

    let bag = source(&path, false, false, &[]);
    let topics = bag.topics().expect("topics");
    let listed: Vec<_> = topics.iter().map(|t| t.topic.as_str()).collect();
    assert_eq!(listed, [INFO, IMAGE, CHATTER]);
    for topic in &topics {
        let (name, definition) = type_of(&topic.topic);
        assert_eq!(topic.message_type.name, name);
        assert_eq!(topic.message_type.schema_encoding, "ros2msg");
        assert_eq!(topic.message_type.definition, definition);
        assert_eq!(topic.encoding, "cdr");
    }

    let (samples, result) = play_all(bag).await;
    result.expect("played to the end");
    assert_samples(&samples, &sorted_by_log_time(&messages));
    // One type per channel, shared by its samples.
    let images: Vec<_> = samples.iter().filter(|s| &*s.topic == IMAGE).collect();
    assert!(images.windows(2).all(|w| Arc::ptr_eq(&w[0].message_type, &w[1].message_type)));
}

#[tokio::test]
async fn plays_unchunked_files_front_to_back() {
    let messages = camera_messages(4, 10_000_000);
    let path = write_file("unchunked", &mcap_bytes(&messages, UNCHUNKED));
    assert_eq!(source(&path, false, false, &[]).topics().expect("topics").len(), 3);
    let (samples, result) = play_all(source(&path, false, false, &[])).await;
    result.expect("played to the end");
    assert_samples(&samples, &messages);
}

#[tokio::test]
async fn topic_filter_selects_channels_by_glob() {
    let messages = camera_messages(3, 10_000_000);
    let path = write_file("filter", &mcap_bytes(&messages, ZSTD_SMALL_CHUNKS));
    let only = |topics: &[&str]| -> Vec<Msg> {
        messages.iter().filter(|m| topics.contains(&m.topic)).cloned().collect()
    };

    let images = source(&path, false, false, &["/camera/*/image_raw"]);
    let topics = images.topics().expect("topics");
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].topic, IMAGE);
    let (samples, result) = play_all(images).await;
    result.expect("played");
    assert_samples(&samples, &only(&[IMAGE]));

    let (samples, result) = play_all(source(&path, false, false, &["/camera/**"])).await;
    result.expect("played");
    assert_samples(&samples, &only(&[IMAGE, INFO]));

    let (samples, result) = play_all(source(&path, false, false, &[CHATTER, "/nothing/*"])).await;
    result.expect("played");
    assert_samples(&samples, &only(&[CHATTER]));
}

#[tokio::test]
async fn a_filter_matching_nothing_lists_the_topics() {
    let path = write_file("nomatch", &mcap_bytes(&camera_messages(1, 1), ZSTD_SMALL_CHUNKS));
    // `*` stays within one segment.
    for filter in [&["/camera/*"][..], &["/lidar/**", "/scan"]] {
        let err = source(&path, false, false, filter).topics().expect_err("nothing matches");
        let text = err.to_string();
        assert!(text.starts_with("source 'bag': no channel of"), "{text}");
        for needed in [IMAGE, INFO, CHATTER, "sensor_msgs/msg/Image", "std_msgs/msg/String"] {
            assert!(text.contains(needed), "{needed} missing from: {text}");
        }
        let (samples, result) = play_all(source(&path, false, false, filter)).await;
        assert!(samples.is_empty());
        assert!(result.expect_err("run fails too").to_string().contains("no channel of"));
    }
}

#[tokio::test]
async fn realtime_keeps_the_recorded_gaps() {
    let messages = chatter(5, 100_000_000);
    let path = write_file("realtime", &mcap_bytes(&messages, ZSTD_SMALL_CHUNKS));
    let mut running = start(source(&path, true, false, &[]), 4);
    let mut arrivals = Vec::new();
    while let Some(sample) = running.rx.recv().await {
        arrivals.push((Instant::now(), sample));
    }
    running.task.await.expect("join").expect("played");
    let samples: Vec<_> = arrivals.iter().map(|(_, s)| s.clone()).collect();
    assert_samples(&samples, &messages);
    for pair in arrivals.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(gap >= Duration::from_millis(80), "gap {gap:?}");
    }
    let total = arrivals[4].0 - arrivals[0].0;
    assert!(total >= Duration::from_millis(390), "5 messages 100 ms apart took {total:?}");
    assert!(total < Duration::from_millis(1500), "5 messages 100 ms apart took {total:?}");
}

#[tokio::test]
async fn as_fast_as_possible_ignores_the_gaps() {
    let messages = chatter(5, 10_000_000_000);
    let path = write_file("fast", &mcap_bytes(&messages, ZSTD_SMALL_CHUNKS));
    let started = Instant::now();
    let (samples, result) = play_all(source(&path, false, false, &[])).await;
    result.expect("played");
    assert_samples(&samples, &messages);
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn loop_starts_over_until_shutdown() {
    let messages = camera_messages(2, 10_000_000);
    let path = write_file("loop", &mcap_bytes(&messages, ZSTD_SMALL_CHUNKS));
    let mut running = start(source(&path, false, true, &[]), 4);
    let mut samples = Vec::new();
    for _ in 0..(messages.len() * 3 + 2) {
        samples.push(running.rx.recv().await.expect("a looping source keeps sending"));
    }
    let expected: Vec<Msg> = messages.iter().cycle().take(samples.len()).cloned().collect();
    assert_samples(&samples, &expected);
    running.stop.send(true).expect("stop");
    let result = tokio::time::timeout(Duration::from_secs(2), running.task).await;
    result.expect("stopped promptly").expect("join").expect("ends Ok on shutdown");
}

#[tokio::test]
async fn realtime_loop_restarts_the_clock_each_pass() {
    let messages = chatter(3, 40_000_000);
    let path = write_file("loop-realtime", &mcap_bytes(&messages, ZSTD_SMALL_CHUNKS));
    let mut running = start(source(&path, true, true, &[]), 4);
    let first = running.rx.recv().await.expect("sample");
    let started = Instant::now();
    let mut samples = vec![first];
    // Passes at 0, 40, 80 ms, each starting where the last ended: the 7th sample is at 160 ms.
    for _ in 0..6 {
        samples.push(running.rx.recv().await.expect("sample"));
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(140), "took {took:?}");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    let expected: Vec<Msg> = messages.iter().cycle().take(7).cloned().collect();
    assert_samples(&samples, &expected);
    running.stop.send(true).expect("stop");
    running.task.await.expect("join").expect("Ok on shutdown");
}

#[tokio::test]
async fn shutdown_stops_a_waiting_source_promptly() {
    let path = write_file("shutdown", &mcap_bytes(&chatter(3, 10_000_000_000), ZSTD_SMALL_CHUNKS));
    // Sleeping until the next message, 10 s away.
    let mut running = start(source(&path, true, false, &[]), 4);
    running.rx.recv().await.expect("first sample");
    running.stop.send(true).expect("stop");
    let result = tokio::time::timeout(Duration::from_millis(500), running.task).await;
    result.expect("stopped promptly").expect("join").expect("Ok on shutdown");

    // Blocked on a full output channel nobody reads.
    let running = start(source(&path, false, true, &[]), 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    running.stop.send(true).expect("stop");
    let result = tokio::time::timeout(Duration::from_millis(500), running.task).await;
    result.expect("stopped promptly").expect("join").expect("Ok on shutdown");

    // Already shut down before it starts.
    let (tx, mut rx) = mpsc::channel(4);
    let (_stop, shutdown) = watch::channel(true);
    Box::new(source(&path, false, false, &[])).run(tx, shutdown).await.expect("Ok");
    assert!(rx.recv().await.is_none());
}

/// `topics()` and `run()` both fail with a message containing each of `needed`.
async fn assert_fails(path: &Path, needed: &[&str]) {
    let err = source(path, false, false, &[]).topics().expect_err("topics fails");
    assert_eq!(err.source_name, "bag");
    for text in needed {
        assert!(err.message.contains(text), "'{text}' missing from: {err}");
    }
    let (samples, result) = play_all(source(path, false, false, &[])).await;
    assert!(samples.is_empty());
    let err = result.expect_err("run fails");
    for text in needed {
        assert!(err.message.contains(text), "'{text}' missing from: {err}");
    }
}

#[tokio::test]
async fn bad_files_give_clear_errors() {
    let missing = tmp_path("does-not-exist");
    let _ = std::fs::remove_file(&missing);
    assert_fails(&missing, &["not found", &missing.display().to_string()]).await;

    let text = write_file("not-mcap", b"rosbag2_bagfile_information:\n  version: 9\n");
    assert_fails(&text, &["is not an MCAP file", &text.display().to_string()]).await;

    let empty = write_file("empty", b"");
    assert_fails(&empty, &["is empty"]).await;

    let whole = mcap_bytes(&camera_messages(4, 1_000_000), ZSTD_SMALL_CHUNKS);
    for cut in [whole.len() / 2, whole.len() - 1, 8, 3] {
        let truncated = write_file(&format!("truncated-{cut}"), &whole[..cut]);
        let needed: &[&str] = if cut < 8 { &["not an MCAP file"] } else { &["is truncated"] };
        assert_fails(&truncated, needed).await;
    }

    // A summary whose bytes were overwritten.
    let mut broken = whole.clone();
    let footer_at = broken.len() - 8 - 20;
    let bogus = broken.len() as u64 - 30;
    broken[footer_at..footer_at + 8].copy_from_slice(&bogus.to_le_bytes());
    let broken = write_file("broken-summary", &broken);
    assert_fails(&broken, &["is corrupt"]).await;
}

#[tokio::test]
async fn a_file_truncated_while_it_plays_is_an_error_not_a_crash() {
    let messages = camera_messages(200, 1_000_000);
    let bytes = mcap_bytes(&messages, PLAIN_SMALL_CHUNKS);
    let path = write_file("truncated-while-playing", &bytes);
    // One sample in the channel at a time: the source reads the file as it goes.
    let mut running = start(source(&path, false, false, &[]), 1);
    running.rx.recv().await.expect("first sample");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|file| file.set_len(bytes.len() as u64 / 2))
        .expect("truncate");
    let mut received = 1;
    let drain = async {
        while running.rx.recv().await.is_some() {
            received += 1;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), drain).await.expect("source never ended");
    let err = running.task.await.expect("run panicked").expect_err("run fails");
    assert!(err.message.contains("became shorter while it played"), "{err}");
    assert!(received < messages.len(), "{received} of {} played", messages.len());
}

#[tokio::test]
async fn a_schema_that_is_not_utf8_is_an_error() {
    let mut writer =
        WriteOptions::new().profile("ros2").create(Cursor::new(Vec::new())).expect("writer");
    let schema = writer.add_schema(STRING_TYPE, "ros2msg", &[0xff, 0xfe, b'\n']).expect("schema");
    let channel = writer.add_channel(schema, CHATTER, "cdr", &BTreeMap::new()).expect("channel");
    let header = MessageHeader { channel_id: channel, sequence: 0, log_time: 1, publish_time: 1 };
    writer.write_to_known_channel(&header, &string_cdr("x")).expect("write");
    writer.finish().expect("finish");
    let path = write_file("latin1-schema", &writer.into_inner().into_inner());
    assert_fails(&path, &["std_msgs/msg/String", CHATTER, "not UTF-8"]).await;
}

#[tokio::test]
async fn a_corrupt_chunk_ends_playback_after_the_messages_before_it() {
    let messages = camera_messages(6, 10_000_000);
    let mut file = mcap_bytes(&messages, PLAIN_SMALL_CHUNKS);
    let summary = mcap::Summary::read(&file).expect("summary").expect("has a summary");
    let mut chunks = summary.chunk_indexes.clone();
    chunks.sort_by_key(|c| c.chunk_start_offset);
    assert!(chunks.len() >= 4, "{} chunks", chunks.len());
    // The first record of the third chunk claims to be longer than the chunk.
    let at = chunks[2].compressed_data_offset().expect("offset") as usize + 1;
    file[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    let path = write_file("corrupt-chunk", &file);

    source(&path, false, false, &[]).topics().expect("the summary is intact");
    let (samples, result) = play_all(source(&path, false, false, &[])).await;
    let err = result.expect_err("corrupt chunk");
    assert!(err.message.contains("is corrupt in the chunk at byte"), "{err}");
    assert!(!samples.is_empty() && samples.len() < messages.len(), "{} samples", samples.len());
    assert_samples(&samples, &messages[..samples.len()]);
}

#[tokio::test]
async fn a_corrupt_record_in_an_unchunked_file_ends_playback_there() {
    let messages = chatter(6, 10_000_000);
    let mut file = mcap_bytes(&messages, UNCHUNKED);
    // The message record of `message-3`: opcode, length, then 22 header bytes before its data.
    let data_at = file
        .windows(messages[3].data.len())
        .position(|w| w == messages[3].data.as_slice())
        .expect("message 3 in the file");
    let length_at = data_at - 22 - 8;
    file[length_at..length_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    let path = write_file("corrupt-record", &file);

    let (samples, result) = play_all(source(&path, false, false, &[])).await;
    let err = result.expect_err("corrupt record");
    assert!(err.message.contains("is corrupt"), "{err}");
    assert_samples(&samples, &messages[..3]);
}

#[tokio::test]
async fn damaged_files_never_panic() {
    let messages = camera_messages(3, 10_000_000);
    for (name, layout) in
        [("zstd", ZSTD_SMALL_CHUNKS), ("plain", PLAIN_SMALL_CHUNKS), ("unchunked", UNCHUNKED)]
    {
        let whole = mcap_bytes(&messages, layout);
        let path = tmp_path(&format!("damaged-{name}"));
        // About 150 places spread over the file, header to footer.
        for at in (0..whole.len()).step_by(whole.len() / 150) {
            for value in [0xff, 0x00] {
                let mut damaged = whole.clone();
                damaged[at] ^= value ^ 0x5a;
                std::fs::write(&path, &damaged).expect("write");
                // A panic in `topics()` fails this test; one in `run()`'s reader would surface
                // as an error mentioning it.
                let _ = source(&path, false, false, &[]).topics();
                let (_, result) = play_all(source(&path, false, false, &[])).await;
                if let Err(err) = result {
                    assert!(!err.message.contains("panicked"), "byte {at} of {name}: {err}");
                }
            }
        }
    }
}
