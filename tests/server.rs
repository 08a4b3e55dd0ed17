//! Rust to Rust through a real livekit-server: frames, metadata, schema text, unpublish,
//! events for tracks that already exist, and every error a user can run into.

mod common;

use common::server::TestServer;
use common::{frame_suite, wait_track};
use dtbridge::livekit::{
    ConnectOptions, Credentials, DataTrackFrameEncoding, DataTrackSchemaEncoding,
    DataTrackSchemaId, Grants, MAX_FRAME_BYTES, PushError, Room, RoomError, RoomEvent,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_that_exist_before_joining_are_announced() {
    let Some(server) = TestServer::start("tracks_that_exist_before_joining_are_announced") else {
        return;
    };
    let (robot, _events) = server.join("late", "robot").await;
    let _track = robot.publish_track(TrackOptions::new("early/track")).await.unwrap();
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

    let track = robot.publish_track(TrackOptions::new("taken")).await.unwrap();
    let err = robot.publish_track(TrackOptions::new("taken")).await.unwrap_err();
    assert!(matches!(err, RoomError::DuplicateName { .. }), "{err}");
    let err = robot.publish_track(TrackOptions::new("")).await.unwrap_err();
    assert!(matches!(err, RoomError::InvalidName { .. }), "{err}");
    let err = robot.publish_track(TrackOptions::new("n".repeat(300))).await.unwrap_err();
    assert!(matches!(err, RoomError::InvalidName { .. }), "{err}");
    assert!(err.to_string().contains("300 characters"), "{err}");

    let err = track.try_push(vec![0u8; MAX_FRAME_BYTES + 1], Some(1)).unwrap_err();
    assert_eq!(err, PushError::TooLarge { len: MAX_FRAME_BYTES + 1, max: MAX_FRAME_BYTES });

    let no_publish = Grants { publish_data: false, subscribe: true };
    let (viewer, _events) = Room::connect(server.options("errors", "viewer", no_publish))
        .await
        .expect("a token without canPublishData may still join");
    let err = viewer.publish_track(TrackOptions::new("nope")).await.unwrap_err();
    assert!(matches!(err, RoomError::NotAllowed { .. }), "{err}");
    assert!(err.to_string().contains("canPublishData"), "{err}");

    // The server is still serving the robot after all of the above.
    let second = robot.publish_track(TrackOptions::new("still/fine")).await.unwrap();
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
    let err = Room::connect(options).await.err().expect("a wrong secret must not join");
    let RoomError::Auth { status, reason } = &err else { panic!("expected Auth, got {err}") };
    assert_eq!(*status, 401, "{err}");
    assert!(!reason.is_empty(), "the server's reason is passed on: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_running_fails_within_the_timeout() {
    let ip = common::server::test_ip();
    let port = std::net::TcpListener::bind((ip.as_str(), 0)).unwrap().local_addr().unwrap().port();
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
    let err = Room::connect(options).await.err().expect("nothing listens there");
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    assert!(
        matches!(err, RoomError::Connect { .. } | RoomError::Timeout { .. }),
        "unexpected error: {err}"
    );
    assert!(err.to_string().contains(&port.to_string()), "names the URL: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_keep_going_after_the_server_restarts() {
    let Some(mut server) = TestServer::start("both_sides_keep_going_after_the_server_restarts")
    else {
        return;
    };
    let (robot, mut robot_events) = server.join("restart", "robot").await;
    let (operator, mut operator_events) = server.join("restart", "operator").await;
    let schema = DataTrackSchemaId::new("std_msgs/msg/String", DataTrackSchemaEncoding::Ros2Msg);
    let track = robot
        .publish_track(
            TrackOptions::new("restart/track")
                .with_frame_encoding(DataTrackFrameEncoding::Cdr)
                .with_schema(schema, "string data\n"),
        )
        .await
        .unwrap();
    let remote = wait_track(&mut operator_events, "restart/track").await;
    let mut frames = remote.subscribe().await.unwrap();
    deliver_one(&track, &mut frames, 1).await.expect("frames flow before the restart");

    server.restart();
    common::wait_event(&mut robot_events, Duration::from_secs(30), |event| {
        matches!(event, RoomEvent::Reconnected).then_some(())
    })
    .await;
    // The robot's track can be published again before the operator hears it is back.
    let mut republished = None;
    common::wait_event(&mut operator_events, Duration::from_secs(30), |event| match event {
        RoomEvent::Reconnected => Some(()),
        RoomEvent::TrackPublished(again) if again.info().name() == "restart/track" => {
            republished = Some(again);
            None
        }
        _ => None,
    })
    .await;

    // The robot's track is published again. The operator either keeps its subscription or,
    // when it came back before the robot republished, sees the track published anew.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seq = 2;
    loop {
        assert!(Instant::now() < deadline, "no frame after the restart within 30 s");

        if deliver_one(&track, &mut frames, seq).await.is_some() {
            break;
        }
        seq += 1;
        while let Ok(event) = operator_events.try_recv() {
            if let RoomEvent::TrackPublished(again) = event
                && again.info().name() == "restart/track"
            {
                republished = Some(again);
            }
        }
        if let Some(again) = republished.take() {
            assert_eq!(operator.schema_definition(&again).await.unwrap(), "string data\n");
            frames = again.subscribe().await.unwrap();
        }
    }
    robot.leave().await;
    operator.leave().await;
}

/// Pushes frame `seq` and waits up to a second for a frame with that timestamp.
async fn deliver_one(
    track: &dtbridge::livekit::LocalTrack,
    frames: &mut dtbridge::livekit::DataTrackStream,
    seq: u64,
) -> Option<()> {
    use futures::StreamExt;
    _ = track.try_push(vec![7u8; 100], Some(seq));
    let until = tokio::time::Instant::now() + Duration::from_secs(1);
    while let Ok(Some(frame)) = tokio::time::timeout_at(until, frames.next()).await {
        if frame.user_timestamp() == Some(seq) {
            return Some(());
        }
    }
    None
}
