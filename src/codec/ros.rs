//! ROS 2 message types as plain Rust structs, field for field (same names, same order, same
//! types) as their `.msg` definitions, so [`super::cdr`] lays them out exactly as ROS 2 does.
//!
//! Each implements [`super::RosMessage`] (type name, `ros2msg` definition, CDR). `Default`
//! gives the ROS defaults (all zero/empty, except [`Quaternion::w`] = 1).

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// `builtin_interfaces/msg/Time`: seconds and nanoseconds since the Unix epoch (ROS time).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub struct Time {
    /// Seconds, over all i32 values.
    pub sec: i32,
    /// Nanoseconds within the second, in `[0, 1e9)`.
    pub nanosec: u32,
}

impl Time {
    /// A time from its two fields.
    pub const fn new(sec: i32, nanosec: u32) -> Self {
        Self { sec, nanosec }
    }

    /// A time from nanoseconds since the epoch (negative: before it, with `nanosec` still in
    /// `[0, 1e9)`). Seconds outside i32 saturate.
    pub fn from_nanos(nanos: i64) -> Self {
        let sec = nanos.div_euclid(1_000_000_000);
        let nanosec = nanos.rem_euclid(1_000_000_000) as u32;
        match i32::try_from(sec) {
            Ok(sec) => Self { sec, nanosec },
            Err(_) if sec < 0 => Self::new(i32::MIN, 0),
            Err(_) => Self::new(i32::MAX, 999_999_999),
        }
    }

    /// Nanoseconds since the epoch.
    pub fn to_nanos(&self) -> i64 {
        i64::from(self.sec) * 1_000_000_000 + i64::from(self.nanosec)
    }

    /// The current wall-clock time (what a ROS 2 driver stamps with the system clock).
    pub fn now() -> Self {
        let nanos = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
            Err(before) => {
                i64::try_from(before.duration().as_nanos()).map(|n| -n).unwrap_or(i64::MIN)
            }
        };
        Self::from_nanos(nanos)
    }
}

/// `std_msgs/msg/Header`: acquisition time and coordinate frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Header {
    /// Acquisition time.
    pub stamp: Time,
    /// Coordinate frame, e.g. `camera_depth_optical_frame`.
    pub frame_id: String,
}

/// `sensor_msgs/msg/RegionOfInterest`: a sub-window of the full camera resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct RegionOfInterest {
    /// Leftmost pixel of the ROI.
    pub x_offset: u32,
    /// Topmost pixel of the ROI.
    pub y_offset: u32,
    /// Height of the ROI (0: full resolution).
    pub height: u32,
    /// Width of the ROI (0: full resolution).
    pub width: u32,
    /// Whether a distinct rectified ROI should be computed.
    pub do_rectify: bool,
}

/// `sensor_msgs/msg/Image`: an uncompressed image.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Image {
    /// Acquisition time and optical frame.
    pub header: Header,
    /// Number of rows.
    pub height: u32,
    /// Number of columns.
    pub width: u32,
    /// Pixel encoding: `rgb8`, `bgr8`, `mono8`, `mono16`, `16UC1`, `32FC1`, ...
    pub encoding: String,
    /// 1 if multi-byte pixel values are big-endian.
    pub is_bigendian: u8,
    /// Row length in bytes.
    pub step: u32,
    /// Pixel data, `step * height` bytes.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// `sensor_msgs/msg/CompressedImage`: an encoded image (JPEG, PNG, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct CompressedImage {
    /// Acquisition time and optical frame.
    pub header: Header,
    /// `ORIG_PIXFMT; CODEC compressed [COMPRESSED_PIXFMT]`, e.g. `rgb8; jpeg compressed bgr8`.
    pub format: String,
    /// The encoded image.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// `sensor_msgs/msg/CameraInfo`: calibration and geometry of a camera.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CameraInfo {
    /// Acquisition time and optical frame.
    pub header: Header,
    /// Calibrated image height.
    pub height: u32,
    /// Calibrated image width.
    pub width: u32,
    /// Distortion model, e.g. `plumb_bob`.
    pub distortion_model: String,
    /// Distortion parameters (5 for `plumb_bob`: k1, k2, t1, t2, k3).
    pub d: Vec<f64>,
    /// Intrinsic matrix, 3x3 row-major.
    pub k: [f64; 9],
    /// Rectification matrix, 3x3 row-major.
    pub r: [f64; 9],
    /// Projection matrix, 3x4 row-major.
    pub p: [f64; 12],
    /// Horizontal binning (0 and 1: none).
    pub binning_x: u32,
    /// Vertical binning (0 and 1: none).
    pub binning_y: u32,
    /// Region of interest (all 0: full resolution).
    pub roi: RegionOfInterest,
}

/// `geometry_msgs/msg/Quaternion`: an orientation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quaternion {
    /// x component.
    pub x: f64,
    /// y component.
    pub y: f64,
    /// z component.
    pub z: f64,
    /// w component (the .msg default is 1).
    pub w: f64,
}

impl Default for Quaternion {
    /// The identity rotation, as the .msg defaults (`float64 w 1`).
    fn default() -> Self {
        Self { x: 0.0, y: 0.0, z: 0.0, w: 1.0 }
    }
}

/// `geometry_msgs/msg/Vector3`: a vector in free space.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Vector3 {
    /// x component.
    pub x: f64,
    /// y component.
    pub y: f64,
    /// z component.
    pub z: f64,
}

/// `sensor_msgs/msg/Imu`: orientation, angular velocity and linear acceleration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Imu {
    /// Acquisition time and IMU frame.
    pub header: Header,
    /// Orientation estimate.
    pub orientation: Quaternion,
    /// Row-major covariance about x, y, z (element 0 = -1: no estimate).
    pub orientation_covariance: [f64; 9],
    /// Angular velocity in rad/s.
    pub angular_velocity: Vector3,
    /// Row-major covariance about x, y, z.
    pub angular_velocity_covariance: [f64; 9],
    /// Linear acceleration in m/s^2.
    pub linear_acceleration: Vector3,
    /// Row-major covariance x, y, z.
    pub linear_acceleration_covariance: [f64; 9],
}

/// `geometry_msgs/msg/Point`: a position in free space.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Point {
    /// x coordinate.
    pub x: f64,
    /// y coordinate.
    pub y: f64,
    /// z coordinate.
    pub z: f64,
}

/// `geometry_msgs/msg/Pose`: a position and an orientation.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Pose {
    /// Position.
    pub position: Point,
    /// Orientation.
    pub orientation: Quaternion,
}

/// `geometry_msgs/msg/PoseWithCovariance`: a pose with its uncertainty.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PoseWithCovariance {
    /// The pose.
    pub pose: Pose,
    /// Row-major 6x6 covariance of (x, y, z, rotation about X, Y, Z).
    #[serde(with = "covariance")]
    pub covariance: [f64; 36],
}

/// `geometry_msgs/msg/Twist`: linear and angular velocity.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Twist {
    /// Linear velocity in m/s.
    pub linear: Vector3,
    /// Angular velocity in rad/s.
    pub angular: Vector3,
}

/// `geometry_msgs/msg/TwistWithCovariance`: a twist with its uncertainty.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TwistWithCovariance {
    /// The twist.
    pub twist: Twist,
    /// Row-major 6x6 covariance of (x, y, z, rotation about X, Y, Z).
    #[serde(with = "covariance")]
    pub covariance: [f64; 36],
}

/// `geometry_msgs/msg/Transform`: a translation and a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Transform {
    /// Translation in metres.
    pub translation: Vector3,
    /// Rotation.
    pub rotation: Quaternion,
}

/// `geometry_msgs/msg/TransformStamped`: the transform from `header.frame_id` to
/// `child_frame_id` at `header.stamp`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TransformStamped {
    /// Time and parent frame.
    pub header: Header,
    /// The child frame.
    pub child_frame_id: String,
    /// Child frame in the parent frame.
    pub transform: Transform,
}

/// `tf2_msgs/msg/TFMessage`: what `/tf` and `/tf_static` carry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TFMessage {
    /// The transforms.
    #[serde(deserialize_with = "messages::deserialize")]
    pub transforms: Vec<TransformStamped>,
}

/// `nav_msgs/msg/Odometry`: a pose and velocity estimate.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Odometry {
    /// Time and the pose's frame (e.g. `odom`).
    pub header: Header,
    /// The twist's frame (e.g. `base_link`).
    pub child_frame_id: String,
    /// Pose in `header.frame_id`.
    pub pose: PoseWithCovariance,
    /// Velocity in `child_frame_id`.
    pub twist: TwistWithCovariance,
}

impl Default for PoseWithCovariance {
    /// All zero (`Default` is derived only for arrays up to 32 elements).
    fn default() -> Self {
        Self { pose: Pose::default(), covariance: [0.0; 36] }
    }
}

impl Default for TwistWithCovariance {
    /// All zero (`Default` is derived only for arrays up to 32 elements).
    fn default() -> Self {
        Self { twist: Twist::default(), covariance: [0.0; 36] }
    }
}

/// serde for `float64[36]`: serde derives arrays only up to 32 elements. A fixed-size array is
/// a tuple to serde, which CDR writes without a length, as ROS does.
mod covariance {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::ser::SerializeTuple;
    use serde::{Deserializer, Serializer};
    use std::fmt;

    const LEN: usize = 36;

    pub fn serialize<S: Serializer>(values: &[f64; LEN], serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(LEN)?;
        for value in values {
            tuple.serialize_element(value)?;
        }
        tuple.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[f64; LEN], D::Error> {
        struct Elements;
        impl<'de> Visitor<'de> for Elements {
            type Value = [f64; LEN];
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "{LEN} float64 values")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut values = [0.0; LEN];
                for (i, value) in values.iter_mut().enumerate() {
                    *value =
                        seq.next_element()?.ok_or_else(|| A::Error::invalid_length(i, &self))?;
                }
                Ok(values)
            }
        }
        deserializer.deserialize_tuple(LEN, Elements)
    }
}

/// serde for a sequence of messages, growing the vector as elements decode instead of
/// preallocating the length the input claims: serde preallocates up to one element per byte
/// left, which for a 100-byte struct would let a malformed length cost 100 times the input.
mod messages {
    use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
    use std::fmt;
    use std::marker::PhantomData;

    pub fn deserialize<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        struct Elements<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Elements<T> {
            type Value = Vec<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sequence of messages")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(element) = seq.next_element()? {
                    out.push(element);
                }
                Ok(out)
            }
        }
        deserializer.deserialize_seq(Elements(PhantomData))
    }
}
