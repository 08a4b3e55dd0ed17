//! Shared by the integration tests: deterministic payloads, waiting for room events, the frame
//! suite that every transport must pass, and the real livekit-server.

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod link;
pub mod process;
pub mod readers;
pub mod realsense;
pub mod ros2;
pub mod server;

use dtbridge::livekit::{
    DataTrackFrameEncoding, DataTrackSchemaEncoding, DataTrackSchemaId, DataTrackStream,
    DataTrackSubscribeOptions, PushError, RemoteDataTrack, Room, RoomEvent, RoomEvents,
    TrackOptions,
};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::Duration;

/// Where the setup scripts keep what they build: `DTBRIDGE_CACHE`, else `~/.cache/dtbridge`.
pub fn cache_dir() -> PathBuf {
    match std::env::var("DTBRIDGE_CACHE") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
            .join(".cache/dtbridge"),
    }
}

/// The python of a venv a setup script made: `$env_var`, else `<cache>/<venv>/bin/python`.
/// `None` after a loud skip (a failure in CI) naming the script that makes it.
pub fn venv_python(test: &str, env_var: &str, venv: &str, setup: &str) -> Option<PathBuf> {
    venv_program(test, env_var, venv, "python", setup)
}

/// A program of a venv a setup script made: `$env_var`, else `<cache>/<venv>/bin/<program>`.
/// `None` after a loud skip (a failure in CI) naming the script that makes it.
pub fn venv_program(
    test: &str,
    env_var: &str,
    venv: &str,
    program: &str,
    setup: &str,
) -> Option<PathBuf> {
    let path = match std::env::var(env_var) {
        Ok(path) if !path.is_empty() => PathBuf::from(path),
        _ => cache_dir().join(venv).join("bin").join(program),
    };
    if path.is_file() {
        Some(path)
    } else {
        server::skip(test, &format!("no venv {program} at {} ({setup})", path.display()));
        None
    }
}

/// The Node Foxglove client (tests/peers/node, installed with its npm packages by
/// scripts/setup-node.sh), or `None` after a loud skip (a failure in CI). Foxglove's decoders
/// (`decode_ros2.mjs`) are installed beside it.
pub fn foxglove_client(test: &str) -> Option<PathBuf> {
    let path = std::env::var("DTBRIDGE_FOXGLOVE_CLIENT").ok().filter(|p| !p.is_empty());
    match path.map(PathBuf::from) {
        Some(path) if path.is_file() => Some(path),
        _ => {
            server::skip(
                test,
                "DTBRIDGE_FOXGLOVE_CLIENT is not set (scripts/setup-node.sh installs it)",
            );
            None
        }
    }
}

/// Byte `j` of test frame `i`: the same formula as `tests/peers/lk_peer.py`.
pub fn payload(i: u64, len: usize, seed: u64) -> Vec<u8> {
    (0..len as u64).map(|j| ((i * 31 + j * 7 + seed) & 0xFF) as u8).collect()
}

pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// `std_msgs/msg/String` in CDR: encapsulation header, length with the NUL, text, NUL.
pub fn string_cdr(text: &str) -> Vec<u8> {
    let mut out = vec![0, 1, 0, 0];
    out.extend_from_slice(&(text.len() as u32 + 1).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.push(0);
    out
}

/// Frame sizes from 1 B to 1.9 MB, log-uniform so that every order of magnitude is covered,
/// with both ends always present.
pub fn mixed_sizes(count: usize) -> Vec<usize> {
    const MAX: f64 = 1_900_000.0;
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..count)
        .map(|i| match i {
            0 => 1,
            1 => MAX as usize,
            _ => {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
                MAX.powf(unit).round().max(1.0) as usize
            }
        })
        .collect()
}

/// Waits for the next event matching `pick`, skipping others.
pub async fn wait_event<T>(
    events: &mut RoomEvents,
    within: Duration,
    mut pick: impl FnMut(RoomEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(within, async {
        loop {
            let event = events.recv().await.expect("room event stream ended");
            if let Some(found) = pick(event) {
                return found;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no matching room event within {within:?}"))
}

/// Waits until a remote track with this name is published.
pub async fn wait_track(events: &mut RoomEvents, name: &str) -> RemoteDataTrack {
    wait_event(events, Duration::from_secs(10), |event| match event {
        RoomEvent::TrackPublished(track) if track.info().name() == name => Some(track),
        _ => None,
    })
    .await
}

pub const SCHEMA_TEXT: &str = "# test schema\nuint64 index\nuint8[] data\n";

/// What every transport must do with frames: typed metadata and the schema text round-trip,
/// `count` frames of mixed sizes arrive intact, in order and with their timestamps on two
/// subscriptions of the same track, and the unpublish is seen.
pub async fn frame_suite(
    publisher: &Room,
    subscriber: &Room,
    sub_events: &mut RoomEvents,
    count: usize,
) {
    let name = "suite/frames";
    let schema = DataTrackSchemaId::new("dtbridge_test/msg/Blob", DataTrackSchemaEncoding::Ros2Msg);
    let options = TrackOptions::new(name)
        .with_frame_encoding(DataTrackFrameEncoding::Cdr)
        .with_schema(schema.clone(), SCHEMA_TEXT);
    let local = publisher.publish_track(options).await.expect("publish");

    let remote = wait_track(sub_events, name).await;
    assert_eq!(remote.publisher_identity(), publisher.identity());
    assert_eq!(remote.info().schema(), Some(&schema));
    assert_eq!(remote.info().frame_encoding(), Some(&DataTrackFrameEncoding::Cdr));
    assert_eq!(subscriber.schema_definition(&remote).await.expect("schema text"), SCHEMA_TEXT);

    let options = DataTrackSubscribeOptions::default().with_buffer_size(64);
    let mut first = remote.subscribe_with_options(options.clone()).await.expect("subscribe");
    let mut second = remote.subscribe_with_options(options).await.expect("second subscribe");

    let sizes = mixed_sizes(count);
    const BASE_TS: u64 = 1_700_000_000_000;
    const WINDOW: usize = 4;
    let expect = |i: usize| (sha256(&payload(i as u64, sizes[i], 0)), BASE_TS + i as u64);

    let mut received = 0;
    for (i, &size) in sizes.iter().enumerate() {
        // A bounded window in flight: data tracks are lossy by design, and this test is
        // about integrity and order, not about how much a burst can overflow.
        while i >= received + WINDOW {
            receive(&mut first, received, expect(received)).await;
            receive(&mut second, received, expect(received)).await;
            received += 1;
        }
        let data = payload(i as u64, size, 0);
        let ts = BASE_TS + i as u64;
        push_with_retry(&local, data, ts).await;
    }
    while received < count {
        receive(&mut first, received, expect(received)).await;
        receive(&mut second, received, expect(received)).await;
        received += 1;
    }

    local.unpublish();
    let sid = remote.info().sid();
    wait_event(sub_events, Duration::from_secs(10), |event| match event {
        RoomEvent::TrackUnpublished { sid: gone, name: gone_name, .. } if gone == sid => {
            assert_eq!(gone_name, name);
            Some(())
        }
        _ => None,
    })
    .await;
}

/// Receives frame `i` and checks its checksum and timestamp.
async fn receive(stream: &mut DataTrackStream, i: usize, expected: (String, u64)) {
    let frame = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap_or_else(|_| panic!("frame {i} did not arrive within 10 s"))
        .expect("subscription ended");
    let ts = frame.user_timestamp().expect("timestamp");
    assert_eq!(ts, expected.1, "frame {i}: wrong or out-of-order frame");
    assert_eq!(sha256(&frame.payload()), expected.0, "frame {i}: payload differs");
}

/// Pushes a frame, waiting out a full queue (bounded: 10 s).
pub async fn push_with_retry(track: &dtbridge::livekit::LocalTrack, data: Vec<u8>, ts: u64) {
    let data = bytes::Bytes::from(data);
    for _ in 0..10_000 {
        match track.try_push(data.clone(), Some(ts)) {
            Ok(()) => return,
            Err(PushError::QueueFull) => tokio::time::sleep(Duration::from_millis(1)).await,
            Err(err) => panic!("push failed: {err}"),
        }
    }
    panic!("queue stayed full for 10 s");
}
