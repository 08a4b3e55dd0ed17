//! The running `ros2` source: one r2r node on a thread of its own (rcl calls block), which
//! spins, drains every subscription after each spin (r2r's per-subscription buffer holds 10
//! messages and drops silently when full), polls the graph, and re-sends latched messages.

use super::Ros2Config;
use super::definition::{AmentIndex, type_parts};
use super::type_support::TypeSupports;
use crate::source::{Durability, QosOverride, Reliability, TopicPolicy};
use crate::source::{
    MessageType, Payload, Sample, SampleSender, Shutdown, Source, SourceError, TopicInfo,
};
use crate::topic::Filter;
use bytes::Bytes;
use futures::Stream;
use r2r::QosProfile;
use r2r::qos::{DurabilityPolicy, ReliabilityPolicy};
use std::collections::{HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Longest a spin waits for DDS events; bounds how late discovery, re-sends and shutdown run.
const SPIN_TIMEOUT: Duration = Duration::from_millis(10);

/// Least history depth of a subscription whose route does not set one: a publisher that falls
/// behind (a starved process) catches up in a burst, and whatever of a burst exceeds the
/// reader's history is lost before the bridge can take it. Measured: bursts of 165 Imu
/// messages lost up to 165 at depth 100 (in an rclpy subscriber alike) and none at 1000.
const MIN_DEPTH: usize = 1000;
/// History depth for types whose messages run to megabytes: a reliable camera topic at depth
/// 1000 could hold gigabytes while the bridge is busy, and the route keeps only the latest
/// frame anyway, so a deeper history would only hold frames that get replaced.
const LARGE_MESSAGE_DEPTH: usize = 10;
/// The types [`LARGE_MESSAGE_DEPTH`] applies to.
const LARGE_MESSAGE_TYPES: [&str; 5] = [
    "sensor_msgs/msg/Image",
    "sensor_msgs/msg/CompressedImage",
    "sensor_msgs/msg/PointCloud2",
    "sensor_msgs/msg/PointCloud",
    "nav_msgs/msg/OccupancyGrid",
];

/// The message encoding of everything a ROS 2 node receives.
const CDR: &str = "cdr";

/// A configured `ros2` source.
pub struct Ros2Source {
    config: Ros2Config,
    policy: Arc<dyn TopicPolicy>,
}

impl Ros2Source {
    /// A source that subscribes to what `config` allows and `policy` routes.
    pub fn new(config: Ros2Config, policy: Arc<dyn TopicPolicy>) -> Ros2Source {
        Ros2Source { config, policy }
    }
}

#[async_trait::async_trait]
impl Source for Ros2Source {
    fn name(&self) -> &str {
        &self.config.name
    }

    /// None up front: topics are found in the graph while running.
    fn topics(&self) -> Result<Vec<TopicInfo>, SourceError> {
        Ok(Vec::new())
    }

    async fn run(
        self: Box<Self>,
        out: SampleSender,
        shutdown: Shutdown,
    ) -> Result<(), SourceError> {
        let name = self.config.name.clone();
        let (done, result) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new().name(format!("ros2-{name}")).spawn(move || {
            _ = done.send(Bridge::start(self.config, self.policy, out, shutdown).map(Bridge::run));
        });
        let error = |message: String| SourceError { source_name: name.clone(), message };
        spawned.map_err(|err| error(format!("cannot start its thread: {err}")))?;
        match result.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(error(message)),
            Err(_) => Err(error("its thread ended without a result".into())),
        }
    }
}

/// A subscribed topic.
struct Subscription {
    topic: Arc<str>,
    message_type: Arc<MessageType>,
    messages: Pin<Box<dyn Stream<Item = Vec<u8>> + Send>>,
    /// The last distinct messages, for a transient-local subscription.
    latched: Option<VecDeque<Bytes>>,
    /// Whether any publisher was seen at the last graph poll.
    has_publishers: bool,
}

/// The node and what it bridges.
struct Bridge {
    config: Ros2Config,
    policy: Arc<dyn TopicPolicy>,
    out: SampleSender,
    shutdown: Shutdown,
    node: r2r::Node,
    /// The config's `topics` less its `deny`.
    topics: Filter,
    index: AmentIndex,
    type_supports: TypeSupports,
    subscriptions: Vec<Subscription>,
    /// Topics not bridged, reported once each.
    passed_over: HashSet<String>,
}

impl Bridge {
    fn start(
        config: Ros2Config,
        policy: Arc<dyn TopicPolicy>,
        out: SampleSender,
        shutdown: Shutdown,
    ) -> Result<Bridge, String> {
        if let Some(id) = config.domain_id {
            check_domain_id(id)?;
        }
        let topics = config.filter()?;
        let context =
            r2r::Context::create().map_err(|err| format!("cannot initialize ROS 2: {err}"))?;
        let node =
            r2r::Node::create(context, &config.node_name, &config.namespace).map_err(|err| {
                format!(
                    "cannot create node '{}' in '{}': {err}",
                    config.node_name, config.namespace
                )
            })?;
        tracing::info!(
            "ROS 2 node '{}' up (domain {}); looking for topics matching {:?}",
            node.fully_qualified_name().unwrap_or_else(|_| config.node_name.clone()),
            std::env::var("ROS_DOMAIN_ID").unwrap_or_else(|_| "0".into()),
            config.topics.as_slice()
        );
        let index = AmentIndex::from_env();
        Ok(Bridge {
            config,
            policy,
            out,
            shutdown,
            node,
            topics,
            index: index.clone(),
            type_supports: TypeSupports::new(index),
            subscriptions: Vec::new(),
            passed_over: HashSet::new(),
        })
    }

    fn run(mut self) {
        let discovery = Duration::from_secs_f64(self.config.discovery_interval_s);
        let resend = (self.config.latched_resend_s > 0.0)
            .then(|| Duration::from_secs_f64(self.config.latched_resend_s));
        let mut next_discovery = Instant::now();
        let mut next_resend = resend.map(|interval| Instant::now() + interval);
        while !*self.shutdown.borrow() {
            if Instant::now() >= next_discovery {
                self.discover();
                next_discovery = Instant::now() + discovery;
            }
            if self.subscriptions.is_empty() {
                // rcl_wait on an empty wait set returns at once: nothing to spin for yet.
                std::thread::sleep(SPIN_TIMEOUT);
            } else {
                self.node.spin_once(SPIN_TIMEOUT);
            }
            if !self.drain() {
                return;
            }
            if let (Some(interval), Some(due)) = (resend, next_resend)
                && Instant::now() >= due
            {
                if !self.resend_latched() {
                    return;
                }
                next_resend = Some(Instant::now() + interval);
            }
        }
    }

    /// Subscribes to new topics and notes vanished ones.
    fn discover(&mut self) {
        let topics = match self.node.get_topic_names_and_types() {
            Ok(topics) => topics,
            Err(err) => {
                tracing::warn!("ROS 2 graph query failed: {err}; trying again");
                return;
            }
        };
        for subscription in &mut self.subscriptions {
            let publishers = self
                .node
                .get_publishers_info_by_topic(&subscription.topic, false)
                .map_or(0, |list| list.len());
            match (subscription.has_publishers, publishers > 0) {
                (true, false) => {
                    tracing::info!("'{}' has no publishers now", subscription.topic)
                }
                (false, true) => tracing::info!("'{}' has publishers again", subscription.topic),
                _ => {}
            }
            subscription.has_publishers = publishers > 0;
        }
        let mut names: Vec<_> = topics.into_iter().collect();
        names.sort();
        for (topic, types) in names {
            if self.passed_over.contains(&topic)
                || self.subscriptions.iter().any(|s| *s.topic == *topic)
            {
                continue;
            }
            if let Err(why) = self.subscribe(&topic, &types) {
                why.report(&topic);
                self.passed_over.insert(topic);
            }
        }
    }

    /// Subscribes to `topic` if it is wanted and routed; `Err(why not)` otherwise.
    fn subscribe(&mut self, topic: &str, types: &[String]) -> Result<(), PassOver> {
        if !self.topics.is_match(topic) {
            return Err(PassOver::NotWanted);
        }
        let route_qos = self.policy.route(topic).map_err(PassOver::NoRoute)?;
        let [type_name] = types else {
            return Err(PassOver::Unusable(format!(
                "it has several types ({}); bridging needs one",
                crate::text::printable(&types.join(", "))
            )));
        };
        // From here on the type name is printed and becomes paths: a ROS name, or skipped.
        type_parts(type_name).map_err(PassOver::Unusable)?;
        let publishers = self
            .node
            .get_publishers_info_by_topic(topic, false)
            .map_err(|err| PassOver::Unusable(format!("cannot query its publishers: {err}")))?;
        if publishers.is_empty() {
            // Only subscribers so far (perhaps this node's own): look again next poll.
            return Ok(());
        }
        let offered: Vec<_> = publishers.iter().map(|p| p.qos_profile.clone()).collect();
        let qos = subscription_qos(type_name, &offered, &route_qos);
        let type_support = self.type_supports.get(type_name).map_err(|err| {
            PassOver::Unusable(format!("its type {type_name} cannot be loaded: {err}"))
        })?;
        let definition = self.index.definition(type_name).map_err(|err| {
            PassOver::Unusable(format!(
                "its type {type_name} has no definition the operator could decode with: {err}"
            ))
        })?;
        let transient_local = qos.durability == DurabilityPolicy::TransientLocal;
        let messages = self
            .node
            .subscribe_raw_with_type_support(topic, type_support, qos.clone())
            .map_err(|err| PassOver::Unusable(format!("cannot subscribe: {err}")))?;
        tracing::info!(
            "subscribed to '{topic}' ({type_name}, {}, {}, depth {})",
            reliability_name(&qos.reliability),
            if transient_local { "transient local" } else { "volatile" },
            qos.depth
        );
        self.subscriptions.push(Subscription {
            topic: topic.into(),
            message_type: Arc::new(MessageType {
                name: type_name.clone(),
                schema_encoding: crate::codec::SCHEMA_ENCODING.into(),
                definition,
            }),
            messages: Box::pin(messages),
            latched: transient_local.then(VecDeque::new),
            has_publishers: true,
        });
        Ok(())
    }

    /// Passes on every message r2r holds; false once the pipeline is gone.
    fn drain(&mut self) -> bool {
        let mut context = Context::from_waker(Waker::noop());
        let latched_depth = self.config.latched_depth;
        for subscription in &mut self.subscriptions {
            while let Poll::Ready(Some(message)) =
                subscription.messages.as_mut().poll_next(&mut context)
            {
                let message = Bytes::from(message);
                if let Some(kept) = &mut subscription.latched
                    && !kept.contains(&message)
                {
                    if kept.len() == latched_depth {
                        kept.pop_front();
                    }
                    kept.push_back(message.clone());
                }
                if self.out.blocking_send(sample(&self.config.name, subscription, message)).is_err()
                {
                    return false;
                }
            }
        }
        true
    }

    /// Sends the kept messages of latched topics again; false once the pipeline is gone.
    fn resend_latched(&mut self) -> bool {
        for subscription in &self.subscriptions {
            for message in subscription.latched.iter().flatten() {
                let sample = sample(&self.config.name, subscription, message.clone());
                if self.out.blocking_send(sample).is_err() {
                    return false;
                }
            }
        }
        true
    }
}

/// A message of `subscription`, stamped with the time it is passed on (the CDR is not decoded,
/// so any header stamp inside stays unread).
fn sample(source: &str, subscription: &Subscription, message: Bytes) -> Sample {
    Sample {
        source: source.into(),
        topic: subscription.topic.clone(),
        message_type: subscription.message_type.clone(),
        encoding: CDR.into(),
        payload: Payload::Encoded(message),
        stamp_ns: crate::util::now_ns(),
    }
}

/// Why a topic is not bridged.
enum PassOver {
    /// `topics`/`deny` exclude it: not worth a message.
    NotWanted,
    /// No enabled route publishes it.
    NoRoute(String),
    /// It cannot be bridged: the reason, for the operator of the robot to fix.
    Unusable(String),
}

impl PassOver {
    /// Says once why `topic` is not bridged, as loudly as the reason deserves.
    fn report(&self, topic: &str) {
        match self {
            PassOver::NotWanted => tracing::debug!("'{topic}' is not in this source's topics"),
            PassOver::NoRoute(why) => tracing::info!("'{topic}' is not bridged: {why}"),
            PassOver::Unusable(why) => tracing::error!("'{topic}' is skipped: {why}"),
        }
    }
}

/// The QoS to subscribe with: what every publisher can serve (reliable only if all are,
/// transient local only if all are, as rosbag2 does), overridden by the route. The history is
/// as deep as the deepest publisher's, at least [`MIN_DEPTH`]: a reliable topic is only as
/// lossless as the reader's history is deep, since a spin takes one message per subscription
/// and a burst longer than the history overwrites its oldest messages; but only
/// [`LARGE_MESSAGE_DEPTH`] for the types of [`LARGE_MESSAGE_TYPES`], whose history would
/// otherwise be bounded by nothing but the publisher's pace.
fn subscription_qos(type_name: &str, offered: &[QosProfile], route: &QosOverride) -> QosProfile {
    let all_reliable = offered.iter().all(|q| q.reliability == ReliabilityPolicy::Reliable);
    let all_transient = offered.iter().all(|q| q.durability == DurabilityPolicy::TransientLocal);
    let reliability = match route.reliability {
        Some(Reliability::Reliable) => ReliabilityPolicy::Reliable,
        Some(Reliability::BestEffort) => ReliabilityPolicy::BestEffort,
        None if all_reliable => ReliabilityPolicy::Reliable,
        None => ReliabilityPolicy::BestEffort,
    };
    let durability = match route.durability {
        Some(Durability::TransientLocal) => DurabilityPolicy::TransientLocal,
        Some(Durability::Volatile) => DurabilityPolicy::Volatile,
        None if all_transient => DurabilityPolicy::TransientLocal,
        None => DurabilityPolicy::Volatile,
    };
    QosProfile::default()
        .keep_last(route.depth.unwrap_or_else(|| {
            if LARGE_MESSAGE_TYPES.contains(&type_name) {
                LARGE_MESSAGE_DEPTH
            } else {
                offered.iter().map(|q| q.depth).max().unwrap_or(0).max(MIN_DEPTH)
            }
        }))
        .reliability(reliability)
        .durability(durability)
}

fn reliability_name(policy: &ReliabilityPolicy) -> &'static str {
    match policy {
        ReliabilityPolicy::Reliable => "reliable",
        _ => "best effort",
    }
}

/// Checks that the process's environment names the domain the config asks for: rcl reads it
/// from `ROS_DOMAIN_ID` when the ROS context is created, and `dtbridge run` sets it from the
/// config before it starts any thread (changing the environment later is undefined behaviour).
fn check_domain_id(id: u32) -> Result<(), String> {
    match std::env::var("ROS_DOMAIN_ID") {
        Ok(set) if set.trim() == id.to_string() => Ok(()),
        set => Err(format!(
            "domain_id {id}: this process's ROS_DOMAIN_ID is {}; `dtbridge run` sets it from the config at startup, a program embedding the ros2 source must set it before starting threads",
            set.map_or_else(
                |_| "unset".to_string(),
                |v| format!("'{}'", crate::text::printable(&v))
            )
        )),
    }
}
