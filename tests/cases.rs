//! Config-driven integration tests: every directory under `tests/cases/` holds a `config.toml`
//! for `dtbridge run` and an `expect.toml` with what a subscriber must receive. One harness
//! runs each case through the loopback room and through a real livekit-server. Also checks
//! that every example under `config/` is valid.

mod common;

use common::server::TestServer;
use dtbridge::daemon;
use dtbridge::livekit::{DataTrackFrameEncoding, Room, RoomEvent, RoomEvents};
use futures::StreamExt;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    seconds: f64,
    tracks: Vec<ExpectTrack>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectTrack {
    name: String,
    schema: String,
    encoding: String,
    min_frames: u64,
    max_frames: u64,
}

/// What the subscriber saw of one track.
#[derive(Debug, Default, Clone)]
struct Seen {
    schema: String,
    encoding: String,
    definition: String,
    frames: u64,
    /// The first frame, decompressed: must be CDR (encapsulation header 00 01 00 00).
    first: Option<Vec<u8>>,
}

fn case_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("tests/cases")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("config.toml").is_file())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no cases under tests/cases");
    dirs
}

fn encoding_name(encoding: Option<&DataTrackFrameEncoding>) -> String {
    match encoding {
        Some(DataTrackFrameEncoding::Cdr) => "cdr".into(),
        Some(DataTrackFrameEncoding::Custom(name)) => name.clone(),
        other => format!("{other:?}"),
    }
}

/// Subscribes to every track `operator` sees and counts frames.
fn collect(operator: Room, mut events: RoomEvents) -> Arc<Mutex<BTreeMap<String, Seen>>> {
    let seen: Arc<Mutex<BTreeMap<String, Seen>>> = Default::default();
    let out = seen.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let RoomEvent::TrackPublished(track) = event else { continue };
            let name = track.info().name().to_string();
            let encoding = encoding_name(track.info().frame_encoding());
            let definition = operator.schema_definition(&track).await.unwrap_or_default();
            let schema = track.info().schema().map(|s| s.name().to_string()).unwrap_or_default();
            out.lock().unwrap().insert(
                name.clone(),
                Seen { schema, encoding: encoding.clone(), definition, ..Default::default() },
            );
            let mut frames = track.subscribe().await.expect("subscribe");
            let out = out.clone();
            tokio::spawn(async move {
                while let Some(frame) = frames.next().await {
                    let mut seen = out.lock().unwrap();
                    let entry = seen.get_mut(&name).expect("recorded");
                    entry.frames += 1;
                    if entry.first.is_none() {
                        let payload = frame.payload().to_vec();
                        entry.first = Some(if encoding.ends_with("+zstd") {
                            zstd::decode_all(payload.as_slice()).expect("zstd frame")
                        } else {
                            payload
                        });
                    }
                }
            });
        }
    });
    seen
}

async fn run_case(dir: &Path, robot: (Room, RoomEvents), operator: (Room, RoomEvents)) {
    let case = dir.file_name().unwrap().to_string_lossy().to_string();
    let expect: Expect =
        toml::from_str(&std::fs::read_to_string(dir.join("expect.toml")).unwrap()).unwrap();
    let prepared = daemon::prepare(&dir.join("config.toml")).expect("valid case config");
    let seen = collect(operator.0.clone(), operator.1);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let daemon = tokio::spawn(daemon::publish(prepared, robot.0, robot.1, stop));
    tokio::time::sleep(Duration::from_secs_f64(expect.seconds)).await;
    stop_tx.send_replace(true);
    tokio::time::timeout(Duration::from_secs(10), daemon)
        .await
        .expect("the daemon stops within 10 s")
        .unwrap()
        .expect("the daemon ran without error");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let seen = seen.lock().unwrap().clone();
    let names: Vec<&String> = seen.keys().collect();
    let mut expected: Vec<&String> = expect.tracks.iter().map(|t| &t.name).collect();
    expected.sort();
    assert_eq!(names, expected, "{case}: tracks");
    for want in &expect.tracks {
        let got = &seen[&want.name];
        assert_eq!(got.schema, want.schema, "{case}: schema of {}", want.name);
        assert_eq!(got.encoding, want.encoding, "{case}: encoding of {}", want.name);
        assert!(
            got.definition.lines().next().is_some(),
            "{case}: no schema definition for {}",
            want.name
        );
        assert!(
            (want.min_frames..=want.max_frames).contains(&got.frames),
            "{case}: {} got {} frames, expected {}..={}",
            want.name,
            got.frames,
            want.min_frames,
            want.max_frames
        );
        let first = got.first.as_ref().expect("a frame");
        assert_eq!(&first[..4], &[0, 1, 0, 0], "{case}: {} is not CDR", want.name);
    }
    operator.0.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_through_the_loopback_room() {
    for dir in case_dirs() {
        let hub = dtbridge::livekit::LoopbackHub::new("cases");
        let operator = hub.join("operator").unwrap();
        let robot = hub.join("robot").unwrap();
        run_case(&dir, robot, operator).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_through_livekit_server() {
    let Some(server) = TestServer::start("cases_through_livekit_server") else {
        return;
    };
    for (n, dir) in case_dirs().iter().enumerate() {
        let room = format!("case-{n}");
        let operator = server.join(&room, "operator").await;
        let robot = server.join(&room, "robot").await;
        run_case(dir, robot, operator).await;
    }
}

#[test]
fn every_example_config_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("config/") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            // A build without a source's feature refuses its configs, saying why.
            let unbuilt = [
                (cfg!(feature = "ros2"), "type = \"ros2\"", dtbridge::source::NO_ROS2),
                (
                    cfg!(feature = "realsense"),
                    "type = \"realsense\"",
                    dtbridge::source::NO_REALSENSE,
                ),
            ]
            .into_iter()
            .find(|(built, marker, _)| !built && text.contains(marker));
            if let Some((_, _, reason)) = unbuilt {
                let err = daemon::prepare(&path).err().expect("refused without the feature");
                assert!(err.to_string().contains(reason), "{err}");
                checked += 1;
                continue;
            }
            let prepared = daemon::prepare(&path)
                .unwrap_or_else(|err| panic!("{} is not valid: {err}", path.display()));
            assert!(prepared.failed.is_empty(), "{}: {:?}", path.display(), prepared.failed);
            // Sources that find their topics while running (ROS 2) announce none up front.
            let announced = prepared.sources.iter().any(|s| !s.topics().unwrap().is_empty());
            assert!(
                !announced || !prepared.plan.tracks.is_empty(),
                "{} has sources with topics but publishes nothing",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no example configs");
}
