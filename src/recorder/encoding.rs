//! From a track's metadata to an MCAP channel: message encoding, schema, channel metadata,
//! and whether frames are zstd-decompressed first.
//!
//! The data track encodings are the MCAP registry's, so they map 1:1 (`cdr`, `protobuf`,
//! `json`, ... and `ros2msg`, `protobuf`, `jsonschema`, ...). A `<base>+zstd` frame encoding is
//! stored as `<base>` after decompression. A track with no frame encoding is untyped and stored
//! as raw bytes under [`RAW_MESSAGE_ENCODING`] with no schema.

use super::TrackMeta;
use crate::codec::RosMessage;
use crate::codec::compress::strip_zstd_encoding;
use crate::codec::ros::{
    CameraInfo, CompressedImage, Header, Image, Imu, Quaternion, RegionOfInterest, Time, Vector3,
};
use std::collections::BTreeMap;

/// The MCAP message encoding of frames on an untyped track (no frame encoding): the bytes as
/// received, on a channel without a schema (schema id 0). MCAP allows custom encodings;
/// Foxglove lists such a topic but shows no content for it; the `mcap` CLI and libraries
/// return the bytes unchanged.
pub const RAW_MESSAGE_ENCODING: &str = "application/octet-stream";

/// The largest message a `<base>+zstd` frame may decompress to. Larger frames are dropped
/// and counted (a frame is at most about 2 MB on the wire; a raw 4K RGB image is 25 MB).
pub const MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

/// The QoS profile rosbag2 records for a reliable, volatile, keep-last-10 publisher (the
/// default `rclcpp` profile), in rosbag2's YAML (metadata version 9, Jazzy and later).
pub const DEFAULT_QOS_PROFILES: &str = "- history: keep_last
  depth: 10
  reliability: reliable
  durability: volatile
  deadline:
    sec: 9223372036
    nsec: 854775807
  lifespan:
    sec: 9223372036
    nsec: 854775807
  liveliness: automatic
  liveliness_lease_duration:
    sec: 9223372036
    nsec: 854775807
  avoid_ros_namespace_conventions: false";

/// The schema of a channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SchemaSpec {
    /// Type name, e.g. `sensor_msgs/msg/Image`.
    pub name: String,
    /// Schema encoding; empty when the text could not be fetched.
    pub encoding: String,
    /// Schema text; empty when the encoding is empty.
    pub data: Vec<u8>,
}

/// How frames of one track are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChannelSpec {
    /// MCAP message encoding.
    pub message_encoding: String,
    /// The schema, or `None` for schema id 0.
    pub schema: Option<SchemaSpec>,
    /// Frames are `<base>+zstd`: decompress before storing.
    pub decompress: bool,
    /// Why the track's schema is not stored, when it names one: its text is missing (the
    /// fetch failed), or it is a protobuf schema MCAP readers cannot use. The channel then
    /// keeps the type name under an empty schema encoding.
    pub schema_problem: Option<String>,
    /// Channel metadata (rosbag2's keys on `cdr` channels).
    pub metadata: BTreeMap<String, String>,
}

impl ChannelSpec {
    /// The channel for a track's metadata.
    pub fn from_meta(meta: &TrackMeta) -> Self {
        let frame = meta.frame_encoding.as_deref().filter(|e| !e.is_empty());
        let Some(frame) = frame else {
            return Self {
                message_encoding: RAW_MESSAGE_ENCODING.into(),
                schema: None,
                decompress: false,
                schema_problem: None,
                metadata: BTreeMap::new(),
            };
        };
        let (message_encoding, decompress) = match strip_zstd_encoding(frame) {
            Some(base) => (base.to_string(), true),
            None => (frame.to_string(), false),
        };
        let name = meta.schema_name.as_deref().filter(|n| !n.is_empty());
        let encoding = meta.schema_encoding.as_deref().filter(|e| !e.is_empty());
        let without_text = |name: &str| SchemaSpec {
            name: name.into(),
            encoding: String::new(),
            data: Vec::new(),
        };
        let (schema, schema_problem) = match (name, encoding, &meta.schema_text) {
            (None, _, _) => (None, None),
            (Some(name), Some("protobuf"), Some(text)) => {
                match super::protobuf::descriptor_set(name, text) {
                    Ok(data) => (
                        Some(SchemaSpec { name: name.into(), encoding: "protobuf".into(), data }),
                        None,
                    ),
                    Err(why) => (
                        Some(without_text(name)),
                        Some(format!(
                            "the protobuf schema {name:?} cannot be stored for MCAP readers: {why}"
                        )),
                    ),
                }
            }
            (Some(name), Some(encoding), Some(text)) => (
                Some(SchemaSpec {
                    name: name.into(),
                    encoding: encoding.into(),
                    data: text.as_bytes().to_vec(),
                }),
                None,
            ),
            (Some(name), encoding, _) => (
                Some(without_text(name)),
                encoding.map(|_| format!("the schema text of {name:?} is missing")),
            ),
        };
        let mut metadata = BTreeMap::new();
        if message_encoding == "cdr" {
            metadata.insert("offered_qos_profiles".into(), DEFAULT_QOS_PROFILES.into());
            if let Some(hash) = schema.as_ref().and_then(type_hash) {
                metadata.insert("topic_type_hash".into(), hash.into());
            }
        }
        Self { message_encoding, schema, decompress, schema_problem, metadata }
    }

    /// Whether the channel fits the MCAP `ros2` profile: `cdr` messages with a `ros2msg` or
    /// `ros2idl` schema.
    pub fn is_ros2(&self) -> bool {
        self.message_encoding == "cdr"
            && self
                .schema
                .as_ref()
                .is_some_and(|s| s.encoding == "ros2msg" || s.encoding == "ros2idl")
    }
}

/// The ROS 2 type hash of a schema, when it is one of this crate's types with exactly its
/// definition (a different definition has a different hash, which is then left out).
fn type_hash(schema: &SchemaSpec) -> Option<&'static str> {
    fn entry<M: RosMessage>() -> (&'static str, &'static str, &'static str) {
        (M::TYPE_NAME, M::DEFINITION, M::TYPE_HASH)
    }
    let known = [
        entry::<Image>(),
        entry::<CompressedImage>(),
        entry::<CameraInfo>(),
        entry::<Imu>(),
        entry::<Header>(),
        entry::<Time>(),
        entry::<RegionOfInterest>(),
        entry::<Quaternion>(),
        entry::<Vector3>(),
    ];
    if schema.encoding != crate::codec::SCHEMA_ENCODING {
        return None;
    }
    known
        .iter()
        .find(|(name, def, _)| *name == schema.name && def.as_bytes() == schema.data.as_slice())
        .map(|(_, _, hash)| *hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(frame: Option<&str>, schema: Option<(&str, &str, Option<&str>)>) -> TrackMeta {
        TrackMeta {
            publisher: "robot".into(),
            track: "/t".into(),
            frame_encoding: frame.map(Into::into),
            schema_name: schema.map(|s| s.0.into()),
            schema_encoding: schema.map(|s| s.1.into()),
            schema_text: schema.and_then(|s| s.2.map(Into::into)),
        }
    }

    #[test]
    fn channels() {
        let ros = ChannelSpec::from_meta(&meta(
            Some("cdr+zstd"),
            Some((Image::TYPE_NAME, "ros2msg", Some(Image::DEFINITION))),
        ));
        assert!(ros.decompress && ros.is_ros2() && ros.schema_problem.is_none());
        assert_eq!(ros.message_encoding, "cdr");
        assert_eq!(ros.metadata["topic_type_hash"], Image::TYPE_HASH);
        assert!(ros.metadata["offered_qos_profiles"].contains("keep_last"));

        let other_def = ChannelSpec::from_meta(&meta(
            Some("cdr"),
            Some((Image::TYPE_NAME, "ros2msg", Some("uint8 x\n"))),
        ));
        assert!(other_def.is_ros2() && !other_def.metadata.contains_key("topic_type_hash"));

        let raw = ChannelSpec::from_meta(&meta(None, None));
        assert_eq!(raw.message_encoding, RAW_MESSAGE_ENCODING);
        assert!(raw.schema.is_none() && !raw.is_ros2());

        let missing =
            ChannelSpec::from_meta(&meta(Some("cdr"), Some((Image::TYPE_NAME, "ros2msg", None))));
        assert!(!missing.is_ros2());
        assert!(missing.schema_problem.as_ref().unwrap().contains("missing"));
        assert_eq!(missing.schema.as_ref().unwrap().encoding, "");

        let proto = "syntax = \"proto3\";\npackage a;\nmessage B { int32 x = 1; }\n";
        let protobuf =
            ChannelSpec::from_meta(&meta(Some("protobuf"), Some(("a.B", "protobuf", Some(proto)))));
        let stored = protobuf.schema.as_ref().unwrap();
        assert_eq!((stored.encoding.as_str(), protobuf.schema_problem), ("protobuf", None));
        assert_ne!(stored.data, proto.as_bytes(), "a FileDescriptorSet, not the text");
        let unusable =
            ChannelSpec::from_meta(&meta(Some("protobuf"), Some(("a.C", "protobuf", Some(proto)))));
        assert!(unusable.schema_problem.unwrap().contains("no message 'a.C'"));
        assert_eq!(unusable.schema.unwrap().encoding, "");

        let json = ChannelSpec::from_meta(&meta(Some("json"), None));
        assert_eq!(json.message_encoding, "json");
        assert!(json.schema.is_none() && json.metadata.is_empty());
    }
}
