//! Publish a typed data track and receive it, all in one process through the loopback room.
//!
//! `cargo run --example loopback`

use dtbridge::livekit::{
    DataTrackFrameEncoding, DataTrackSchemaEncoding, DataTrackSchemaId, LoopbackHub, RoomEvent,
    TrackOptions,
};
use futures::StreamExt;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let hub = LoopbackHub::new("example");
    let (robot, _robot_events) = hub.join("robot")?;
    let (operator, mut operator_events) = hub.join("operator")?;

    let schema = DataTrackSchemaId::new("std_msgs/msg/String", DataTrackSchemaEncoding::Ros2Msg);
    let track = robot
        .publish_track(
            TrackOptions::new("/chatter")
                .with_frame_encoding(DataTrackFrameEncoding::Cdr)
                .with_schema(schema, "string data\n"),
        )
        .await?;

    let Some(RoomEvent::TrackPublished(remote)) = operator_events.recv().await else {
        anyhow::bail!("expected the robot's track");
    };
    println!(
        "{} publishes '{}' ({:?}), schema:\n{}",
        remote.publisher_identity(),
        remote.info().name(),
        remote.info().schema(),
        operator.schema_definition(&remote).await?
    );
    let mut frames = remote.subscribe().await?;

    // A CDR-encoded std_msgs/String "hello": encapsulation header, length, text, NUL.
    let cdr = [&[0u8, 1, 0, 0][..], &6u32.to_le_bytes(), b"hello\0"].concat();
    track.try_push(cdr, Some(1_700_000_000_000))?;
    let frame = frames.next().await.expect("a frame");
    println!("received {} bytes stamped {:?}", frame.payload().len(), frame.user_timestamp());

    robot.leave().await;
    operator.leave().await;
    Ok(())
}
