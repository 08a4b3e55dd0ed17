//! The recorder's frame path: frames of any bytes (zstd or not, any user timestamp) on a
//! track of any announced encoding are recorded or counted and dropped.
#![no_main]

use arbitrary::Arbitrary;
use dtbridge::recorder::TrackMeta;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    /// Which frame encoding the track announces.
    encoding: u8,
    frames: Vec<(Vec<u8>, Option<u64>)>,
}

const ENCODINGS: [Option<&str>; 6] =
    [None, Some("cdr"), Some("cdr+zstd"), Some("json+zstd"), Some("protobuf+zstd"), Some("x")];

fuzz_target!(|input: Input| {
    let frame_encoding = ENCODINGS[input.encoding as usize % ENCODINGS.len()];
    let meta = TrackMeta {
        publisher: "robot".into(),
        track: "/camera/imu".into(),
        schema_name: Some("sensor_msgs/msg/Imu".into()),
        schema_encoding: Some("ros2msg".into()),
        schema_text: Some("float64 x".into()),
        frame_encoding: frame_encoding.map(Into::into),
    };
    dtbridge_fuzz::record(meta, &input.frames);
});
