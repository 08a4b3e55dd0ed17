//! CDR decoding of every message type dtbridge decodes: any bytes give a message or an error,
//! and a decoded message encodes to bytes that decode and encode to themselves (bytes, not
//! messages, are compared: a NaN is not equal to itself).
#![no_main]

use dtbridge::codec::RosMessage;
use dtbridge::codec::ros::*;
use libfuzzer_sys::fuzz_target;

fn decode<T: RosMessage>(bytes: &[u8]) {
    if let Ok(message) = T::from_cdr(bytes) {
        let encoded = message.try_to_cdr().expect("a decoded message encodes");
        let decoded = T::from_cdr(&encoded).expect("its encoding decodes");
        assert_eq!(decoded.try_to_cdr().expect("and encodes again"), encoded);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else { return };
    match which % 18 {
        0 => decode::<Time>(bytes),
        1 => decode::<Header>(bytes),
        2 => decode::<RegionOfInterest>(bytes),
        3 => decode::<Quaternion>(bytes),
        4 => decode::<Vector3>(bytes),
        5 => decode::<CameraInfo>(bytes),
        6 => decode::<Imu>(bytes),
        7 => decode::<Point>(bytes),
        8 => decode::<Pose>(bytes),
        9 => decode::<PoseWithCovariance>(bytes),
        10 => decode::<Twist>(bytes),
        11 => decode::<TwistWithCovariance>(bytes),
        12 => decode::<Transform>(bytes),
        13 => decode::<TransformStamped>(bytes),
        14 => decode::<TFMessage>(bytes),
        15 => decode::<Odometry>(bytes),
        16 => decode::<Image>(bytes),
        _ => decode::<CompressedImage>(bytes),
    }
});
