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
use std::sync::Arc;

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
}

/// Builds the configured sources, checking each one's values; errors are `(key, message)`
/// with the key relative to the file (`sources[1].fps`).
// Only ROS 2 sources consult the routes (for their QoS).
#[cfg_attr(not(feature = "ros2"), expect(unused_variables))]
pub fn build(
    configs: &[crate::config::SourceConfig],
    router: &crate::pipeline::Router,
    base_dir: &std::path::Path,
) -> Result<Vec<Box<dyn Source>>, (String, String)> {
    use crate::config::SourceConfig;
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
                SourceConfig::Synthetic(c) => {
                    c.validate()
                        .map_err(|(key, message)| (format!("sources[{i}].{key}"), message))?;
                    Box::new(synthetic::SyntheticSource::new(c.clone()))
                }
                SourceConfig::Mcap(c) => Box::new(mcap::McapSource::new(c.clone(), base_dir)),
                #[cfg(feature = "ros2")]
                SourceConfig::Ros2(c) => {
                    c.validate()
                        .map_err(|(key, message)| (format!("sources[{i}].{key}"), message))?;
                    Box::new(ros2::Ros2Source::new(c.clone(), router.clone()))
                }
                #[cfg(feature = "realsense")]
                SourceConfig::Realsense(c) => {
                    c.validate()
                        .map_err(|(key, message)| (format!("sources[{i}].{key}"), message))?;
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
