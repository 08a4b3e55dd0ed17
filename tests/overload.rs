//! A source faster than the network: memory stays bounded and the drops are counted.

mod common;

use common::server::{TempDir, TestServer};
use dtbridge::daemon;
use dtbridge::pipeline::Pipeline;
use dtbridge::scheduler::{Scheduler, SchedulerOptions};
use dtbridge::source::{
    MessageType, Payload, Sample, SampleSender, Shutdown, Source, SourceError, TopicInfo,
};
use std::sync::Arc;
use std::time::Duration;

/// Sends the same 1.8 MB message as fast as the pipeline takes it.
struct Flood;

fn flood_type() -> Arc<MessageType> {
    Arc::new(MessageType {
        name: "test_msgs/msg/Blob".into(),
        schema_encoding: "ros2msg".into(),
        definition: "uint8[] data\n".into(),
    })
}

#[async_trait::async_trait]
impl Source for Flood {
    fn name(&self) -> &str {
        "flood"
    }

    fn topics(&self) -> Result<Vec<TopicInfo>, SourceError> {
        Ok(vec![TopicInfo {
            topic: "/flood".into(),
            message_type: flood_type(),
            encoding: "cdr".into(),
        }])
    }

    async fn run(
        self: Box<Self>,
        out: SampleSender,
        mut stop: Shutdown,
    ) -> Result<(), SourceError> {
        let payload = bytes::Bytes::from(vec![7u8; 1_800_000]);
        let (topic, message_type) = (Arc::<str>::from("/flood"), flood_type());
        while !*stop.borrow_and_update() {
            let sample = Sample {
                source: "flood".into(),
                topic: topic.clone(),
                message_type: message_type.clone(),
                encoding: "cdr".into(),
                payload: Payload::Encoded(payload.clone()),
                stamp_ns: 0,
            };
            if out.send(sample).await.is_err() {
                break;
            }
            tokio::task::yield_now().await;
        }
        Ok(())
    }
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap();
    kb / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_faster_than_the_network_does_not_grow_memory() {
    let Some(server) = TestServer::start("a_source_faster_than_the_network_does_not_grow_memory")
    else {
        return;
    };
    // 1.8 MB messages as fast as the pipeline takes them: far more than the data channel
    // carries.
    let dir = TempDir::new();
    let config = dir.0.join("flood.toml");
    std::fs::write(&config, "[[routes]]\ntopic = \"/flood\"\n").unwrap();
    let prepared = daemon::prepare(&config).unwrap();
    let topics = Flood.topics().unwrap();
    let plan = dtbridge::pipeline::Plan::resolve(
        &prepared.loaded,
        &prepared.router,
        &[("flood".to_string(), topics[0].clone())],
    )
    .unwrap();
    let (robot, _events) = server.join("flood", "robot").await;
    let scheduler = Scheduler::start(&robot, SchedulerOptions::default());
    let (pipeline, inlet) =
        Pipeline::start(robot.clone(), scheduler.clone(), prepared.router, &plan).await;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(Box::new(Flood).run(inlet, stop));

    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = rss_mb();
    let mut peak = settled;
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(rss_mb());
    }
    stop_tx.send_replace(true);
    running.await.unwrap().unwrap();

    let stats = pipeline.workers()[0].counters.snapshot();
    let transport = robot.transport_stats();
    pipeline.shutdown().await;
    scheduler.stop();
    robot.leave().await;

    // Every queue on the way is bounded (the keep-latest queue, the scheduler's one-frame
    // queue of a low-priority track and its in-flight window, the 1 MB SCTP buffer),
    // so memory swings but does not climb: over 20 s of this flood it stayed between 227 and
    // 349 MB. Unbounded buffering would add 1.8 MB per dropped frame, thousands a minute.
    assert!(peak - settled < 400.0, "RSS grew from {settled:.0} MB to {peak:.0} MB");
    let dropped = stats.dropped() + transport.frames_dropped;
    assert!(stats.samples > 0 && stats.frames > 0, "{stats:?}");
    assert!(
        dropped > 0,
        "the network cannot carry this; drops must be counted: {stats:?} {transport:?}"
    );
}
