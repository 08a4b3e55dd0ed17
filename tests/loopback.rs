//! The in-process loopback room: the same frame tests as through the real server, and the
//! same errors, without a server.

mod common;

use common::{frame_suite, wait_track};
use dtbridge::livekit::{
    LoopbackHub, MAX_FRAME_BYTES, PushError, RoomError, RoomEvent, TrackOptions,
};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_round_trip_through_the_loopback_room() {
    let hub = LoopbackHub::new("loopback-test");
    let (robot, _robot_events) = hub.join("robot").unwrap();
    let (operator, mut operator_events) = hub.join("operator").unwrap();
    frame_suite(&robot, &operator, &mut operator_events, 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_published_before_joining_are_announced() {
    let hub = LoopbackHub::new("late-join");
    let (robot, _events) = hub.join("robot").unwrap();
    let _track = robot.publish_track(TrackOptions::new("early")).await.unwrap();
    let (_operator, mut events) = hub.join("operator").unwrap();
    let track = wait_track(&mut events, "early").await;
    assert_eq!(track.publisher_identity(), "robot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_typed_errors() {
    let hub = LoopbackHub::new("errors");
    let (robot, _events) = hub.join("robot").unwrap();

    let track = robot.publish_track(TrackOptions::new("taken")).await.unwrap();
    let err = robot.publish_track(TrackOptions::new("taken")).await.unwrap_err();
    assert!(matches!(err, RoomError::DuplicateName { .. }), "{err}");

    let err = robot.publish_track(TrackOptions::new("")).await.unwrap_err();
    assert!(matches!(err, RoomError::InvalidName { .. }), "{err}");
    let err = robot.publish_track(TrackOptions::new("x".repeat(300))).await.unwrap_err();
    assert!(err.to_string().contains("300 characters"), "{err}");

    let err = track.try_push(vec![0u8; MAX_FRAME_BYTES + 1], None).unwrap_err();
    assert_eq!(err, PushError::TooLarge { len: MAX_FRAME_BYTES + 1, max: MAX_FRAME_BYTES });
    track.try_push(vec![0u8; MAX_FRAME_BYTES], None).expect("a frame at the limit is accepted");

    let (viewer, _events) = hub.join_with("viewer", false, None).unwrap();
    let err = viewer.publish_track(TrackOptions::new("nope")).await.unwrap_err();
    assert!(matches!(err, RoomError::NotAllowed { .. }), "{err}");
    assert!(err.to_string().contains("canPublishData"), "{err}");

    let err = hub.join("robot").err().expect("a second 'robot' is refused");
    assert!(matches!(err, RoomError::Config(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_unpublishes_for_the_others() {
    let hub = LoopbackHub::new("leave");
    let (robot, _events) = hub.join("robot").unwrap();
    let (_operator, mut events) = hub.join("operator").unwrap();
    let _track = robot.publish_track(TrackOptions::new("t")).await.unwrap();
    wait_track(&mut events, "t").await;
    robot.leave().await;
    common::wait_event(&mut events, Duration::from_secs(5), |event| match event {
        RoomEvent::TrackUnpublished { publisher_identity, name, .. } => {
            assert_eq!((publisher_identity.as_str(), name.as_str()), ("robot", "t"));
            Some(())
        }
        _ => None,
    })
    .await;
    let err = robot.publish_track(TrackOptions::new("after")).await.unwrap_err();
    assert!(matches!(err, RoomError::Disconnected(_)), "{err}");
}
