//! Message codecs: ROS 2 messages as CDR without ROS installed, frame compression, image
//! compression.
//!
//! Sources that have no ROS 2 (synthetic, RealSense) build [`ros`] structs and encode them with
//! [`RosMessage::to_cdr`]; the bytes equal what a ROS 2 driver publishes for the same message
//! (`rclpy.serialization.serialize_message`; only padding bytes, which Fast CDR leaves
//! uninitialized, may differ), and [`RosMessage::DEFINITION`] is the `ros2msg` schema rosbag2
//! would record. `tests/codec.rs` checks both against the ROS 2 Kilted PyPI wheels.
//!
//! - [`cdr`]: serde-based CDR (XCDR1, little-endian) for any type built from ROS primitives.
//! - [`ros`]: `sensor_msgs` Image, CompressedImage, CameraInfo, Imu, `tf2_msgs` TFMessage,
//!   `nav_msgs` Odometry and what they contain.
//! - [`compress`]: zstd with level checks and the `<base>+zstd` encoding name rule.
//! - [`image`]: JPEG/PNG into `sensor_msgs/msg/CompressedImage`, as image_transport does.

pub mod cdr;
pub mod compress;
mod error;
pub mod image;
mod message;
pub mod ros;

pub use error::CodecError;
pub use message::RosMessage;

/// MCAP/data-track schema encoding of [`RosMessage::DEFINITION`].
pub const SCHEMA_ENCODING: &str = "ros2msg";
/// MCAP/data-track message encoding of [`RosMessage::to_cdr`] output.
pub const MESSAGE_ENCODING: &str = "cdr";
