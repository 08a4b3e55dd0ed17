//! [`RosMessage`]: type name, `ros2msg` definition, type hash and CDR for each type of
//! [`super::ros`].
//!
//! The `.msg` texts under `src/codec/msg/` are copied byte for byte from the ROS 2 Kilted wheels
//! (`share/<pkg>/msg/<Type>.msg`: common_interfaces 5.5.1, rcl_interfaces' builtin_interfaces
//! 2.3.0; Apache-2.0). A full definition is assembled as rosbag2's
//! `LocalMessageDefinitionSource` does: the top-level text, then for each dependency in
//! depth-first order over sorted dependency names (each type once) a newline, a line of 80 `=`,
//! a line `MSG: pkg/Type` and that type's text. `tests/codec.rs` checks each against the
//! ament index.

use super::ros::{
    CameraInfo, CompressedImage, Header, Image, Imu, Odometry, Point, Pose, PoseWithCovariance,
    Quaternion, RegionOfInterest, TFMessage, Time, Transform, TransformStamped, Twist,
    TwistWithCovariance, Vector3,
};
use super::{CodecError, cdr};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A ROS 2 message type this crate can encode and decode without ROS installed.
pub trait RosMessage: Serialize + DeserializeOwned {
    /// The full ROS type name, e.g. `sensor_msgs/msg/Image` (MCAP schema name, DDS type).
    const TYPE_NAME: &'static str;
    /// The complete `ros2msg` definition (schema encoding `ros2msg` in MCAP / data tracks).
    const DEFINITION: &'static str;
    /// The ROS 2 type hash (`RIHS01_...`, rosbag2's `topic_type_hash`) of the Kilted
    /// definition.
    const TYPE_HASH: &'static str;

    /// [`Self::DEFINITION`], as a function.
    fn definition() -> &'static str {
        Self::DEFINITION
    }

    /// A guess of the encoded size, to allocate once (large for images).
    fn cdr_size_hint(&self) -> usize {
        256
    }

    /// Encodes to CDR: the 4-byte encapsulation header `00 01 00 00`, then the body.
    ///
    /// # Panics
    /// Only if a string or sequence is longer than `u32::MAX` (CDR cannot encode that); use
    /// [`RosMessage::try_to_cdr`] where that is possible.
    fn to_cdr(&self) -> Vec<u8> {
        match self.try_to_cdr() {
            Ok(bytes) => bytes,
            Err(err) => panic!("{} cannot be encoded as CDR: {err}", Self::TYPE_NAME),
        }
    }

    /// [`RosMessage::to_cdr`] returning an error instead of panicking.
    fn try_to_cdr(&self) -> Result<Vec<u8>, CodecError> {
        cdr::to_vec_with_capacity(self, self.cdr_size_hint())
    }

    /// Appends the encoding to `out` (to reuse a buffer).
    fn write_cdr(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.reserve(self.cdr_size_hint());
        cdr::write_to(self, out)
    }

    /// Decodes from CDR (header + body). Malformed input gives an error, never a panic.
    fn from_cdr(bytes: &[u8]) -> Result<Self, CodecError> {
        cdr::from_slice(bytes)
    }
}

/// The vendored text of `pkg/Type`.
macro_rules! msg_text {
    ($pkg:literal, $ty:literal) => {
        include_str!(concat!("msg/", $pkg, "/", $ty, ".msg"))
    };
}

/// A complete definition: the top-level text, then each dependency with its delimiter.
macro_rules! definition {
    ($pkg:literal, $ty:literal $(, ($dep_pkg:literal, $dep_ty:literal))* $(,)?) => {
        concat!(
            msg_text!($pkg, $ty),
            $(
                "\n",
                "================================================================================\n",
                "MSG: ", $dep_pkg, "/", $dep_ty, "\n",
                msg_text!($dep_pkg, $dep_ty),
            )*
        )
    };
}

macro_rules! ros_message {
    ($rust:ty, $pkg:literal, $ty:literal, $hash:literal, [$(($dep_pkg:literal, $dep_ty:literal)),*]) => {
        impl RosMessage for $rust {
            const TYPE_NAME: &'static str = concat!($pkg, "/msg/", $ty);
            const DEFINITION: &'static str = definition!($pkg, $ty $(, ($dep_pkg, $dep_ty))*);
            const TYPE_HASH: &'static str = $hash;
        }
    };
}

ros_message!(
    Time,
    "builtin_interfaces",
    "Time",
    "RIHS01_b106235e25a4c5ed35098aa0a61a3ee9c9b18d197f398b0e4206cea9acf9c197",
    []
);
ros_message!(
    Header,
    "std_msgs",
    "Header",
    "RIHS01_f49fb3ae2cf070f793645ff749683ac6b06203e41c891e17701b1cb597ce6a01",
    [("builtin_interfaces", "Time")]
);
ros_message!(
    RegionOfInterest,
    "sensor_msgs",
    "RegionOfInterest",
    "RIHS01_ad16bcba5f9131dcdba6fbded19f726f5440e3c513b4fb586dd3027eeed8abb1",
    []
);
ros_message!(
    Quaternion,
    "geometry_msgs",
    "Quaternion",
    "RIHS01_8a765f66778c8ff7c8ab94afcc590a2ed5325a1d9a076ffff38fbce36f458684",
    []
);
ros_message!(
    Vector3,
    "geometry_msgs",
    "Vector3",
    "RIHS01_cc12fe83e4c02719f1ce8070bfd14aecd40f75a96696a67a2a1f37f7dbb0765d",
    []
);
ros_message!(
    CameraInfo,
    "sensor_msgs",
    "CameraInfo",
    "RIHS01_b3dfd68ff46c9d56c80fd3bd4ed22c7a4ddce8c8348f2f59c299e73118e7e275",
    [("sensor_msgs", "RegionOfInterest"), ("std_msgs", "Header"), ("builtin_interfaces", "Time")]
);
ros_message!(
    Imu,
    "sensor_msgs",
    "Imu",
    "RIHS01_7d9a00ff131080897a5ec7e26e315954b8eae3353c3f995c55faf71574000b5b",
    [
        ("geometry_msgs", "Quaternion"),
        ("geometry_msgs", "Vector3"),
        ("std_msgs", "Header"),
        ("builtin_interfaces", "Time")
    ]
);

ros_message!(
    Point,
    "geometry_msgs",
    "Point",
    "RIHS01_6963084842a9b04494d6b2941d11444708d892da2f4b09843b9c43f42a7f6881",
    []
);
ros_message!(
    Pose,
    "geometry_msgs",
    "Pose",
    "RIHS01_d501954e9476cea2996984e812054b68026ae0bfae789d9a10b23daf35cc90fa",
    [("geometry_msgs", "Point"), ("geometry_msgs", "Quaternion")]
);
ros_message!(
    PoseWithCovariance,
    "geometry_msgs",
    "PoseWithCovariance",
    "RIHS01_9a7c0fd234b7f45c6098745ecccd773ca1085670e64107135397aee31c02e1bb",
    [("geometry_msgs", "Pose"), ("geometry_msgs", "Point"), ("geometry_msgs", "Quaternion")]
);
ros_message!(
    Twist,
    "geometry_msgs",
    "Twist",
    "RIHS01_9c45bf16fe0983d80e3cfe750d6835843d265a9a6c46bd2e609fcddde6fb8d2a",
    [("geometry_msgs", "Vector3")]
);
ros_message!(
    TwistWithCovariance,
    "geometry_msgs",
    "TwistWithCovariance",
    "RIHS01_49f574f033f095d8b6cd1beaca5ca7925e296e84af1716d16c89d38b059c8c18",
    [("geometry_msgs", "Twist"), ("geometry_msgs", "Vector3")]
);
ros_message!(
    Transform,
    "geometry_msgs",
    "Transform",
    "RIHS01_beb83fbe698636351461f6f35d1abb20010c43d55374d81bd041f1ba2581fddc",
    [("geometry_msgs", "Quaternion"), ("geometry_msgs", "Vector3")]
);
ros_message!(
    TransformStamped,
    "geometry_msgs",
    "TransformStamped",
    "RIHS01_0a241f87d04668d94099cbb5ba11691d5ad32c2f29682e4eb5653424bd275206",
    [
        ("geometry_msgs", "Transform"),
        ("geometry_msgs", "Quaternion"),
        ("geometry_msgs", "Vector3"),
        ("std_msgs", "Header"),
        ("builtin_interfaces", "Time")
    ]
);
// tf2_msgs has no PyPI wheel: its hash was computed from TransformStamped's type description
// with rosidl_generator_type_description's algorithm, checked on the wheels' own hashes.
ros_message!(
    TFMessage,
    "tf2_msgs",
    "TFMessage",
    "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087",
    [
        ("geometry_msgs", "TransformStamped"),
        ("geometry_msgs", "Transform"),
        ("geometry_msgs", "Quaternion"),
        ("geometry_msgs", "Vector3"),
        ("std_msgs", "Header"),
        ("builtin_interfaces", "Time")
    ]
);
ros_message!(
    Odometry,
    "nav_msgs",
    "Odometry",
    "RIHS01_3cc97dc7fb7502f8714462c526d369e35b603cfc34d946e3f2eda2766dfec6e0",
    [
        ("geometry_msgs", "PoseWithCovariance"),
        ("geometry_msgs", "Pose"),
        ("geometry_msgs", "Point"),
        ("geometry_msgs", "Quaternion"),
        ("geometry_msgs", "TwistWithCovariance"),
        ("geometry_msgs", "Twist"),
        ("geometry_msgs", "Vector3"),
        ("std_msgs", "Header"),
        ("builtin_interfaces", "Time")
    ]
);

impl RosMessage for Image {
    const TYPE_NAME: &'static str = "sensor_msgs/msg/Image";
    const DEFINITION: &'static str = definition!(
        "sensor_msgs",
        "Image",
        ("std_msgs", "Header"),
        ("builtin_interfaces", "Time"),
    );
    const TYPE_HASH: &'static str =
        "RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47";

    fn cdr_size_hint(&self) -> usize {
        self.data.len() + self.header.frame_id.len() + self.encoding.len() + 64
    }
}

impl RosMessage for CompressedImage {
    const TYPE_NAME: &'static str = "sensor_msgs/msg/CompressedImage";
    const DEFINITION: &'static str = definition!(
        "sensor_msgs",
        "CompressedImage",
        ("std_msgs", "Header"),
        ("builtin_interfaces", "Time"),
    );
    const TYPE_HASH: &'static str =
        "RIHS01_15640771531571185e2efc8a100baf923961a4d15d5569652e6cb6691e8e371a";

    fn cdr_size_hint(&self) -> usize {
        self.data.len() + self.header.frame_id.len() + self.format.len() + 64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_have_the_rosbag2_shape() {
        let def = Image::DEFINITION;
        assert!(def.starts_with("# This message contains an uncompressed image\n"));
        let sep = format!("\n{}\nMSG: ", "=".repeat(80));
        let names: Vec<&str> =
            def.split(&sep).skip(1).map(|part| part.lines().next().unwrap_or("")).collect();
        assert_eq!(names, ["std_msgs/Header", "builtin_interfaces/Time"]);
        assert_eq!(Time::DEFINITION, msg_text!("builtin_interfaces", "Time"));
        assert_eq!(Image::TYPE_NAME, "sensor_msgs/msg/Image");
        assert_eq!(Imu::TYPE_NAME, "sensor_msgs/msg/Imu");
    }
}
