//! Sources: where samples come from. Each source is a component with its own typed config; it
//! announces the topics it knows up front and then delivers [`Sample`]s until shut down.

pub mod mcap;
#[cfg(feature = "realsense")]
pub mod realsense;
#[cfg(feature = "ros2")]
pub mod ros2;
pub mod synthetic;

use crate::codec::RosMessage;
use crate::codec::ros::{Header, Image, Time};
use bytes::Bytes;
use mcap::McapSourceConfig;
#[cfg(feature = "realsense")]
use realsense::RealsenseConfig;
#[cfg(feature = "ros2")]
use ros2::Ros2Config;
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use synthetic::SyntheticConfig;

use tokio::sync::{mpsc, watch};

/// A message type: its ROS name (e.g. `sensor_msgs/msg/Image`), schema encoding (`ros2msg`)
/// and definition text. The same on every track of that type, and carried to the operator.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageType {
    /// Type name, the data track's schema id.
    pub name: String,
    /// Schema encoding, as named in the MCAP registry (`ros2msg`, `protobuf`, ...).
    pub schema_encoding: String,
    /// Definition text, stored on the server for subscribers.
    pub definition: String,
}

impl MessageType {
    /// The type of a message this crate encodes itself.
    pub fn of<M: crate::codec::RosMessage>() -> Arc<MessageType> {
        Arc::new(MessageType {
            name: M::TYPE_NAME.into(),
            schema_encoding: crate::codec::SCHEMA_ENCODING.into(),
            definition: M::DEFINITION.into(),
        })
    }

    /// Whether samples of this type are raw images that a route may re-encode.
    pub fn is_raw_image(&self) -> bool {
        self.name == <Image as crate::codec::RosMessage>::TYPE_NAME
    }
}

/// A sample's content.
#[derive(Debug, Clone)]
pub enum Payload {
    /// Bytes already serialized in the topic's message encoding, passed through untouched.
    Encoded(Bytes),
    /// A raw image not yet serialized: the route serializes it once, as
    /// `sensor_msgs/msg/Image` or re-encoded as `sensor_msgs/msg/CompressedImage`.
    Image(Arc<Image>),
}

/// One message on one topic.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The configured name of the source that produced it (the `{source}` of track templates).
    pub source: Arc<str>,
    /// The topic it was published on.
    pub topic: Arc<str>,
    /// Its type.
    pub message_type: Arc<MessageType>,
    /// Message encoding of [`Payload::Encoded`] bytes (`cdr`, `json`, ...).
    pub encoding: Arc<str>,
    /// The message.
    pub payload: Payload,
    /// When the sample was taken, UNIX nanoseconds (the header stamp where there is one).
    pub stamp_ns: u64,
}

/// A topic a source knows before it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicInfo {
    /// Topic name.
    pub topic: String,
    /// Its type.
    pub message_type: Arc<MessageType>,
    /// Its message encoding.
    pub encoding: String,
}

/// Where a source delivers samples. The receiving end (the router) never waits on the network,
/// so a send only waits while the router hands earlier samples to their routes.
pub type SampleSender = mpsc::Sender<Sample>;

/// Becomes `true` when the daemon shuts down.
pub type Shutdown = watch::Receiver<bool>;

/// An error of one source, naming it.
#[derive(Debug, thiserror::Error)]
#[error("source '{source_name}': {message}")]
pub struct SourceError {
    /// The source's configured name.
    pub source_name: String,
    /// What went wrong and, where possible, what to do.
    pub message: String,
}

/// A configured source.
#[async_trait::async_trait]
pub trait Source: Send {
    /// The configured name.
    fn name(&self) -> &str;

    /// The topics this source will publish, as far as they are known before running.
    fn topics(&self) -> Result<Vec<TopicInfo>, SourceError>;

    /// Delivers samples until `shutdown` (or, for a finite source, the end). An error ends
    /// this source only; the daemon keeps the others running.
    async fn run(self: Box<Self>, out: SampleSender, shutdown: Shutdown)
    -> Result<(), SourceError>;

    /// For a source that starts its device again after a failure: the count of those
    /// restarts, which the run's summary reports.
    fn restarts(&self) -> Option<Arc<AtomicU64>> {
        None
    }
}

/// `[[sources]]`: one entry per source, by `type`.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// A synthetic camera and telemetry.
    Synthetic(SyntheticConfig),
    /// An MCAP replay.
    Mcap(McapSourceConfig),
    /// ROS 2 topics.
    #[cfg(feature = "ros2")]
    Ros2(Ros2Config),
    /// A RealSense camera or recording.
    #[cfg(feature = "realsense")]
    Realsense(RealsenseConfig),
}

impl SourceConfig {
    /// The ROS domain a `ros2` source asks for.
    pub(crate) fn ros_domain_id(&self) -> Option<u32> {
        #[cfg(feature = "ros2")]
        if let Self::Ros2(ros) = self {
            return ros.domain_id;
        }
        None
    }
}

/// The source types, as written in `type = "..."` (whether or not this build supports them).
const SOURCE_TYPES: [&str; 4] = ["synthetic", "mcap", "ros2", "realsense"];

/// Why a build without the `ros2` feature refuses `type = "ros2"`.
pub const NO_ROS2: &str = "this build has no ROS 2 support; rebuild with --features ros2 in a shell where ROS 2 is sourced (README: ROS 2 topics)";

/// Why a build without the `realsense` feature refuses `type = "realsense"`.
pub const NO_REALSENSE: &str =
    "this build has no RealSense support; rebuild with --features realsense";

impl SourceConfig {
    /// Reads one `[[sources]]` table and checks its values; errors are `(key within the
    /// table, message)`.
    pub(crate) fn from_table(
        table: serde_json::Map<String, serde_json::Value>,
    ) -> Result<SourceConfig, (String, String)> {
        let config = Self::parse(table)?;
        config.validate()?;
        Ok(config)
    }

    /// The values serde cannot check, keys relative to the table.
    fn validate(&self) -> Result<(), (String, String)> {
        match self {
            Self::Synthetic(c) => c.validate(),
            Self::Mcap(_) => Ok(()),
            #[cfg(feature = "ros2")]
            Self::Ros2(c) => c.validate(),
            #[cfg(feature = "realsense")]
            Self::Realsense(c) => c.validate(),
        }
    }

    fn parse(
        mut table: serde_json::Map<String, serde_json::Value>,
    ) -> Result<SourceConfig, (String, String)> {
        let kind = match table.remove("type") {
            Some(serde_json::Value::String(kind)) => kind,
            Some(other) => return Err(("type".into(), format!("{other} is not a string"))),
            None => {
                let known = SOURCE_TYPES.join("\", \"");
                return Err(("type".into(), format!("missing; one of \"{known}\"")));
            }
        };
        let value = serde_json::Value::Object(table);
        fn typed<T: serde::de::DeserializeOwned>(
            value: serde_json::Value,
        ) -> Result<T, (String, String)> {
            serde_path_to_error::deserialize(value).map_err(|err| {
                (err.path().to_string(), crate::text::with_suggestion(&err.inner().to_string()))
            })
        }
        // Each source's config checks the values serde cannot, here, once, as the file loads.
        match kind.as_str() {
            "synthetic" => typed(value).map(SourceConfig::Synthetic),
            "mcap" => typed(value).map(SourceConfig::Mcap),
            #[cfg(feature = "ros2")]
            "ros2" => typed(value).map(SourceConfig::Ros2),
            #[cfg(not(feature = "ros2"))]
            "ros2" => Err(("type".into(), NO_ROS2.into())),
            #[cfg(feature = "realsense")]
            "realsense" => typed(value).map(SourceConfig::Realsense),
            #[cfg(not(feature = "realsense"))]
            "realsense" => Err(("type".into(), NO_REALSENSE.into())),
            other => {
                let mut message =
                    format!("unknown source type \"{other}\"; known: {}", SOURCE_TYPES.join(", "));
                if let Some(known) = crate::text::closest(other, SOURCE_TYPES) {
                    message.push_str(&format!(" (did you mean \"{known}\"?)"));
                }
                Err(("type".into(), message))
            }
        }
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        match self {
            Self::Synthetic(c) => &c.name,
            Self::Mcap(c) => &c.name,
            #[cfg(feature = "ros2")]
            Self::Ros2(c) => &c.name,
            #[cfg(feature = "realsense")]
            Self::Realsense(c) => &c.name,
        }
    }
}

/// `[routes.qos]`: what a ROS 2 subscription asks for instead of matching its publishers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QosOverride {
    /// Reliability.
    pub reliability: Option<Reliability>,
    /// Durability.
    pub durability: Option<Durability>,
    /// History depth (keep last N).
    pub depth: Option<usize>,
}

/// ROS 2 QoS reliability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reliability {
    /// Retransmit until received.
    Reliable,
    /// Send once; fresh data over complete data.
    BestEffort,
}

/// ROS 2 QoS durability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Only messages published after the subscription exists.
    Volatile,
    /// Late subscribers also get the publisher's last messages ("latched").
    TransientLocal,
}

/// What a source needs to know of the routing, and nothing more of the pipeline: whether a
/// topic is routed, and with what QoS. The pipeline's router implements it.
pub trait TopicPolicy: Send + Sync {
    /// The QoS the route of `topic` asks for, or why the topic is not bridged (no route
    /// matches it, or its route is disabled).
    fn route(&self, topic: &str) -> Result<QosOverride, String>;
}

/// Builds the configured (and already checked) sources; errors are `(key, message)` with the
/// key relative to the file (`sources[1].name`).
// Only ROS 2 sources consult the routes (for their QoS).
#[cfg_attr(not(feature = "ros2"), expect(unused_variables))]
pub fn build(
    configs: &[SourceConfig],
    policy: Arc<dyn TopicPolicy>,
    base_dir: &std::path::Path,
) -> Result<Vec<Box<dyn Source>>, (String, String)> {
    let mut names = std::collections::HashSet::new();
    configs
        .iter()
        .enumerate()
        .map(|(i, config)| {
            if !names.insert(config.name()) {
                let message = format!("a source named '{}' is already configured", config.name());
                return Err((format!("sources[{i}].name"), message));
            }
            let source: Box<dyn Source> = match config {
                SourceConfig::Synthetic(c) => Box::new(synthetic::SyntheticSource::new(c.clone())),
                SourceConfig::Mcap(c) => Box::new(mcap::McapSource::new(c.clone(), base_dir)),
                #[cfg(feature = "ros2")]
                SourceConfig::Ros2(c) => Box::new(ros2::Ros2Source::new(c.clone(), policy.clone())),
                #[cfg(feature = "realsense")]
                SourceConfig::Realsense(c) => {
                    Box::new(realsense::RealsenseSource::new(c.clone(), base_dir))
                }
            };
            Ok(source)
        })
        .collect()
}

/// A ROS header stamped `stamp_ns` (UNIX nanoseconds).
pub(crate) fn header(stamp_ns: u64, frame_id: &str) -> Header {
    Header { stamp: Time::from_nanos(stamp_ns as i64), frame_id: frame_id.into() }
}

/// A message serialized now, as a sample payload.
pub(crate) fn encoded(message: &impl RosMessage) -> Payload {
    Payload::Encoded(message.to_cdr().into())
}
