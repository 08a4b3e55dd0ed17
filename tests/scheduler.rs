//! The link scheduler through the loopback room: a bandwidth cap far below what a camera
//! produces sheds the camera tracks and leaves the high-priority ones whole, and every sample
//! is accounted for. (Slow and broken networks, through livekit-server and the link
//! emulator, are in tests/uplink.rs.)

mod common;

use common::server::TempDir;
use dtbridge::daemon::{self, PublishReport};
use dtbridge::livekit::LoopbackHub;
use dtbridge::scheduler::Priority;
use std::time::{Duration, Instant};

/// 2 Mbit/s: the IMU and the camera infos (~100 kB/s) fit, the raw images (~15 MB/s) do not.
const CAP_MBPS: f64 = 2.0;

const CONFIG: &str = r#"
[livekit]
backend = "loopback"
max_bandwidth_mbps = 2.0

[[sources]]
type = "synthetic"
name = "cam"
width = 424
height = 240
imu_hz = 200

[[routes]]
topic = "/camera/**"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bandwidth_cap_sheds_cameras_and_keeps_high_priority_tracks_whole() {
    let dir = TempDir::new();
    let path = dir.0.join("robot.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let prepared = daemon::prepare(&path).unwrap();
    let hub = LoopbackHub::new("capped");
    let (room, events) = hub.join("robot").unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let running = tokio::spawn(daemon::publish(prepared, room, events, stopped));
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.send_replace(true);
    let PublishReport { tracks, .. } = running.await.unwrap().unwrap();
    let elapsed = started.elapsed();

    let mut bytes_out = 0;
    let mut largest_frame = 0;
    for (plan, stats) in &tracks {
        bytes_out += stats.bytes_out;
        // Every sample is a frame, decimated, or dropped for a reason.
        assert_eq!(
            stats.samples,
            stats.frames + stats.dropped() + stats.decimated,
            "{}: {stats:?}",
            plan.track
        );
        match plan.policy.priority {
            // Shedding and deadlines never touch high-priority tracks (a loaded machine may
            // still replace a sample while the worker encodes: that is not the link).
            Priority::High => {
                assert!(stats.frames > 0, "{}: {stats:?}", plan.track);
                assert_eq!((stats.shed, stats.stale), (0, 0), "{}: {stats:?}", plan.track);
            }
            _ => {
                assert!(stats.frames > 0, "{} starved: {stats:?}", plan.track);
                assert!(stats.shed + stats.stale > 0, "{} not shed: {stats:?}", plan.track);
                // Raw synthetic images have one size per track.
                largest_frame = largest_frame.max(stats.bytes_out / stats.frames.max(1));
            }
        }
    }
    let priorities: Vec<_> = tracks.iter().map(|(plan, _)| plan.policy.priority).collect();
    assert!(priorities.contains(&Priority::High) && priorities.contains(&Priority::Low));
    // The cap holds: at most its rate over the run, plus the pacer's burst and one frame
    // beyond it (a loaded machine only sends less).
    let allowed = CAP_MBPS * 1e6 / 8.0 * elapsed.as_secs_f64() + 16_384.0 + largest_frame as f64;
    assert!(
        (bytes_out as f64) <= allowed,
        "{bytes_out} bytes in {elapsed:?} exceed {CAP_MBPS} Mbit/s ({allowed:.0})"
    );
}
