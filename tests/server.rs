//! Rust to Rust through a real livekit-server: frames, metadata, schema text, unpublish,
//! events for tracks that already exist, and every error a user can run into.

mod common;

use common::server::TestServer;
use common::{frame_suite, wait_track};
use dtbridge::livekit::{
    ConnectOptions, Credentials, Grants, MAX_FRAME_BYTES, PushError, Room, RoomError,
    TrackOptions,
};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_round_trip_through_livekit_server() {
    let Some(server) = TestServer::start("frames_round_trip_through_livekit_server") else {
        return;
    };
    let (robot, _robot_events) = server.join("frames", "robot").await;
    let (operator, mut operator_events) = server.join("frames", "operator").await;
    frame_suite(&robot, &operator, &mut operator_events, 1000).await;
    let stats = robot.transport_stats();
    assert_eq!(stats.frames_dropped, 0, "{stats:?}");
    robot.leave().await;
    operator.leave().await;
}
