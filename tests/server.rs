//! Rust to Rust through a real livekit-server: frames, metadata, schema text, unpublish,
//! events for tracks that already exist, and every error a user can run into.

mod common;

use common::server::TestServer;
use common::{frame_suite, wait_track};
use dtbridge::livekit::{
    ConnectOptions, Credentials, Grants, MAX_FRAME_BYTES, PushError, Room, RoomError, TrackOptions,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_that_exist_before_joining_are_announced() {
    let Some(server) = TestServer::start("tracks_that_exist_before_joining_are_announced") else {
        return;
    };
    let (robot, _events) = server.join("late", "robot").await;
    let _track = robot
        .publish_track(TrackOptions::new("early/track"))
        .await
        .unwrap();
    let (operator, mut events) = server.join("late", "operator").await;
    let track = wait_track(&mut events, "early/track").await;
    assert_eq!(track.publisher_identity(), "robot");
    operator.leave().await;
    robot.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors() {
    let Some(server) = TestServer::start("bad_input_gets_clear_errors") else {
        return;
    };
    let (robot, _events) = server.join("errors", "robot").await;

    let track = robot
        .publish_track(TrackOptions::new("taken"))
        .await
        .unwrap();
    let err = robot
        .publish_track(TrackOptions::new("taken"))
        .await
        .unwrap_err();
    assert!(matches!(err, RoomError::DuplicateName { .. }), "{err}");
    let err = robot
        .publish_track(TrackOptions::new(""))
        .await
        .unwrap_err();
    assert!(matches!(err, RoomError::InvalidName { .. }), "{err}");
    let err = robot
        .publish_track(TrackOptions::new("n".repeat(300)))
        .await
        .unwrap_err();
    assert!(matches!(err, RoomError::InvalidName { .. }), "{err}");
    assert!(err.to_string().contains("300 characters"), "{err}");

    let err = track
        .try_push(vec![0u8; MAX_FRAME_BYTES + 1], Some(1))
        .unwrap_err();
    assert_eq!(
        err,
        PushError::TooLarge {
            len: MAX_FRAME_BYTES + 1,
            max: MAX_FRAME_BYTES
        }
    );

    let no_publish = Grants {
        publish_data: false,
        subscribe: true,
    };
    let (viewer, _events) = Room::connect(server.options("errors", "viewer", no_publish))
        .await
        .expect("a token without canPublishData may still join");
    let err = viewer
        .publish_track(TrackOptions::new("nope"))
        .await
        .unwrap_err();
    assert!(matches!(err, RoomError::NotAllowed { .. }), "{err}");
    assert!(err.to_string().contains("canPublishData"), "{err}");

    // The server is still serving the robot after all of the above.
    let second = robot
        .publish_track(TrackOptions::new("still/fine"))
        .await
        .unwrap();
    second.try_push(vec![1, 2, 3], Some(1)).unwrap();
    viewer.leave().await;
    robot.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_with_the_servers_reason() {
    let Some(server) = TestServer::start("a_wrong_secret_is_refused_with_the_servers_reason")
    else {
        return;
    };
    let mut options = server.options("auth", "intruder", Grants::default());
    if let Credentials::ApiKey { secret, .. } = &mut options.credentials {
        *secret = "not-the-secret-not-the-secret-000".into();
    }
    let err = Room::connect(options)
        .await
        .err()
        .expect("a wrong secret must not join");
    let RoomError::Auth { status, reason } = &err else {
        panic!("expected Auth, got {err}")
    };
    assert_eq!(*status, 401, "{err}");
    assert!(
        !reason.is_empty(),
        "the server's reason is passed on: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_running_fails_within_the_timeout() {
    let ip = common::server::test_ip();
    let port = std::net::TcpListener::bind((ip.as_str(), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let credentials = Credentials::ApiKey {
        key: "devkey".into(),
        secret: "whatever-whatever-whatever-whatever".into(),
        room: "nobody".into(),
        identity: "robot".into(),
        grants: Grants::default(),
    };
    let mut options = ConnectOptions::new(format!("ws://{ip}:{port}"), credentials);
    options.connect_timeout = Duration::from_secs(3);
    let started = Instant::now();
    let err = Room::connect(options)
        .await
        .err()
        .expect("nothing listens there");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(err, RoomError::Connect { .. } | RoomError::Timeout { .. }),
        "unexpected error: {err}"
    );
    assert!(
        err.to_string().contains(&port.to_string()),
        "names the URL: {err}"
    );
}
