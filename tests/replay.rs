//! A replayed ROS 2 MCAP file arrives on the tracks byte-identical to the file's messages, with
//! its schema texts intact: through the loopback room and through a real livekit-server.

mod common;

use common::server::{TempDir, TestServer};
use dtbridge::codec::ros::{CameraInfo, Header, Image, Time};
use dtbridge::codec::{MESSAGE_ENCODING, RosMessage, SCHEMA_ENCODING};
use dtbridge::daemon;
use dtbridge::livekit::{Room, RoomEvent, RoomEvents};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const STRING_DEFINITION: &str = "# A test type not compiled into anything.\nstring data\n";

/// (topic, schema name, definition, messages).
type Channel = (&'static str, &'static str, String, Vec<Vec<u8>>);

fn channels() -> Vec<Channel> {
    let header = |i: u64| Header {
        stamp: Time::from_nanos(1_700_000_000_000_000_000 + i as i64 * 20_000_000),
        frame_id: "camera_color_optical_frame".into(),
    };
    let images = (0..10u64)
        .map(|i| {
            Image {
                header: header(i),
                height: 2,
                width: 3,
                encoding: "rgb8".into(),
                is_bigendian: 0,
                step: 9,
                data: (0..18).map(|b| (b * 7 + i) as u8).collect(),
            }
            .to_cdr()
        })
        .collect();
    let infos = (0..10u64)
        .map(|i| {
            CameraInfo {
                header: header(i),
                height: 2,
                width: 3,
                d: vec![i as f64; 5],
                ..Default::default()
            }
            .to_cdr()
        })
        .collect();
    let strings = (0..10u64).map(|i| common::string_cdr(&format!("message {i}"))).collect();
    vec![
        ("/camera/image_raw", Image::TYPE_NAME, Image::DEFINITION.to_string(), images),
        ("/camera/camera_info", CameraInfo::TYPE_NAME, CameraInfo::DEFINITION.to_string(), infos),
        ("/chatter", "std_msgs/msg/String", STRING_DEFINITION.to_string(), strings),
    ]
}

/// Writes the channels, interleaved 20 ms apart, as a ROS 2 MCAP file. A message on
/// `/warmup` comes one second before them: played in real time, that second lets the
/// subscriber subscribe to the tracks (published up front) before the first message.
fn write_mcap(path: &std::path::Path, channels: &[Channel]) {
    let mut writer =
        mcap::WriteOptions::new().profile("ros2").create(Cursor::new(Vec::new())).unwrap();
    let ids: Vec<u16> = channels
        .iter()
        .map(|(topic, schema, definition, _)| {
            let schema = writer.add_schema(schema, SCHEMA_ENCODING, definition.as_bytes()).unwrap();
            writer.add_channel(schema, topic, MESSAGE_ENCODING, &BTreeMap::new()).unwrap()
        })
        .collect();
    let warmup = writer
        .add_schema("std_msgs/msg/String", SCHEMA_ENCODING, STRING_DEFINITION.as_bytes())
        .unwrap();
    let warmup = writer.add_channel(warmup, "/warmup", MESSAGE_ENCODING, &BTreeMap::new()).unwrap();
    let time = 1_700_000_000_000_000_000 - 1_000_000_000;
    let header = mcap::records::MessageHeader {
        channel_id: warmup,
        sequence: 0,
        log_time: time,
        publish_time: time,
    };
    writer.write_to_known_channel(&header, &[0, 1, 0, 0, 1, 0, 0, 0, 0]).unwrap();
    let mut sequence = 1;
    for i in 0..10 {
        for (channel, id) in channels.iter().zip(&ids) {
            let time = 1_700_000_000_000_000_000 + i as u64 * 20_000_000 + sequence as u64;
            let header = mcap::records::MessageHeader {
                channel_id: *id,
                sequence,
                log_time: time,
                publish_time: time,
            };
            writer.write_to_known_channel(&header, &channel.3[i]).unwrap();
            sequence += 1;
        }
    }
    writer.finish().unwrap();
    std::fs::write(path, writer.into_inner().into_inner()).unwrap();
}

/// Track name -> (schema name, definition, frames in order).
type Received = Arc<Mutex<HashMap<String, (String, String, Vec<Vec<u8>>)>>>;

fn receive_all(operator: Room, mut events: RoomEvents) -> Received {
    let received = Received::default();
    let out = received.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let RoomEvent::TrackPublished(track) = event else { continue };
            let name = track.info().name().to_string();
            let schema = track.info().schema().map(|s| s.name().to_string()).unwrap_or_default();
            let definition = operator.schema_definition(&track).await.unwrap_or_default();
            let mut frames = track.subscribe().await.unwrap();
            out.lock().unwrap().insert(name.clone(), (schema, definition, Vec::new()));
            let out = out.clone();
            tokio::spawn(async move {
                while let Some(frame) = frames.next().await {
                    out.lock().unwrap().get_mut(&name).unwrap().2.push(frame.payload().to_vec());
                }
            });
        }
    });
    received
}

async fn replay(robot: (Room, RoomEvents), operator: (Room, RoomEvents)) {
    let dir = TempDir::new();
    let channels = channels();
    write_mcap(&dir.0.join("recording.mcap"), &channels);
    let config = dir.0.join("replay.toml");
    std::fs::write(
        &config,
        "[[sources]]\ntype = \"mcap\"\nname = \"replay\"\npath = \"recording.mcap\"\n\n\
         [[routes]]\ntopic = \"/**\"\nqueue_depth = 16\n",
    )
    .unwrap();
    let prepared = daemon::prepare(&config).expect("valid config");
    let received = receive_all(operator.0.clone(), operator.1);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let daemon = tokio::spawn(daemon::publish(prepared, robot.0, robot.1, stop));

    // 10 rounds 20 ms apart in real time; wait until every frame is in (bounded).
    let complete = || {
        let received = received.lock().unwrap();
        channels.iter().all(|c| received.get(c.0).is_some_and(|r| r.2.len() >= c.3.len()))
    };
    for _ in 0..100 {
        if complete() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_tx.send_replace(true);
    daemon.await.unwrap().expect("the daemon ran without error");

    let received = received.lock().unwrap().clone();
    for (topic, schema, definition, messages) in &channels {
        let (got_schema, got_definition, frames) =
            received.get(*topic).unwrap_or_else(|| panic!("no track for {topic}"));
        assert_eq!(got_schema, schema, "{topic}");
        assert_eq!(got_definition, definition, "{topic}: schema text");
        assert_eq!(frames, messages, "{topic}: frames equal the file's messages, in order");
    }
    operator.0.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_through_the_loopback_room() {
    let hub = dtbridge::livekit::LoopbackHub::new("replay");
    let operator = hub.join("operator").unwrap();
    let robot = hub.join("robot").unwrap();
    replay(robot, operator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_through_livekit_server() {
    let Some(server) = TestServer::start("replay_through_livekit_server") else {
        return;
    };
    let operator = server.join("replay", "operator").await;
    let robot = server.join("replay", "robot").await;
    replay(robot, operator).await;
}
