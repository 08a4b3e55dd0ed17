//! Codecs (`dtbridge::codec`): CDR round trips, byte equality with the official ROS 2
//! serializer, `ros2msg` definitions equal to the ament index, malformed input, zstd, JPEG/PNG.
//!
//! The ROS 2 side is `tests/peers/ros2_reference.py`, run by the venv python from
//! `scripts/setup-ros2.sh` (`DTBRIDGE_ROS2_PYTHON`, else
//! `${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}/ros2-venv/bin/python`). Without it those tests skip
//! loudly, and fail with `CI=true`. rclpy (Fast CDR) leaves alignment padding uninitialized, so
//! the script zeroes the padding bytes it finds by walking the message's rosidl type
//! information; every other byte must be identical, and rclpy must decode our bytes back to the
//! message it built.

mod common;

use dtbridge::codec::compress::{
    ZstdCompressor, strip_zstd_encoding, validate_zstd_level, zstd_compress, zstd_decompress,
    zstd_encoding,
};
use dtbridge::codec::image::{ImageCodec, PngCompression, compress_image, encode_jpeg, encode_png};
use dtbridge::codec::ros::{
    CameraInfo, CompressedImage, Header, Image, Imu, Odometry, Point, Pose, PoseWithCovariance,
    Quaternion, RegionOfInterest, TFMessage, Time, Transform, TransformStamped, Twist,
    TwistWithCovariance, Vector3,
};
use dtbridge::codec::{CodecError, RosMessage, cdr};
use serde_json::{Value, json};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Debug;

// ------------------------------------------------------------------ allocation watch

/// Records the largest single allocation made by the current thread while watching, so the
/// malformed-input tests can prove decoding never allocates more than the input warrants.
struct WatchingAllocator;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation(size: usize) {
    // try_with: thread-locals may be gone during thread teardown.
    let _ = WATCHING.try_with(|watching| {
        if watching.get() {
            let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
        }
    });
}

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for WatchingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: WatchingAllocator = WatchingAllocator;

/// Runs `f` and returns its result with the largest single allocation it made.
fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|largest| largest.set(0));
    WATCHING.with(|watching| watching.set(true));
    let result = f();
    WATCHING.with(|watching| watching.set(false));
    (result, LARGEST.with(Cell::get))
}

// ------------------------------------------------------------------ sample messages

fn header(sec: i32, nanosec: u32, frame_id: &str) -> Header {
    Header { stamp: Time::new(sec, nanosec), frame_id: frame_id.into() }
}

/// Deterministic bytes.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A smooth test picture (compresses realistically), `channels` bytes per pixel.
fn gradient(width: u32, height: u32, channels: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(width as usize * height as usize * channels);
    for y in 0..height {
        for x in 0..width {
            for c in 0..channels {
                let v = (x * 255 / width.max(1)) as usize * (c + 1)
                    + (y * 255 / height.max(1)) as usize;
                out.push((v / (c + 2)) as u8);
            }
        }
    }
    out
}

/// A synthetic 16-bit depth frame (little-endian), millimetres.
fn depth(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(width as usize * height as usize * 2);
    for y in 0..height {
        for x in 0..width {
            let d = 500 + (x * 3 + y * 5) % 4000 + ((x ^ y) & 7);
            out.extend_from_slice(&(d as u16).to_le_bytes());
        }
    }
    out
}

fn images() -> Vec<Image> {
    vec![
        Image::default(),
        Image {
            header: header(1, 2, "c"),
            height: 1,
            width: 3,
            encoding: "mono8".into(),
            is_bigendian: 0,
            step: 3,
            data: vec![1, 2, 3],
        },
        Image {
            header: header(-5, 999_999_999, "kamera_ü_光学"),
            height: 3,
            width: 5,
            encoding: "rgb8".into(),
            is_bigendian: 0,
            step: 15,
            data: pattern(45, 1),
        },
        Image {
            header: header(1_763_000_000, 123_456_789, "camera_depth_optical_frame"),
            height: 48,
            width: 64,
            encoding: "16UC1".into(),
            is_bigendian: 1,
            step: 128,
            data: depth(64, 48),
        },
        Image {
            header: header(i32::MAX, u32::MAX, ""),
            height: u32::MAX,
            width: 0,
            encoding: "8UC1".into(),
            is_bigendian: 255,
            step: 1,
            data: vec![7],
        },
        Image {
            header: header(i32::MIN, 0, "ab"),
            height: 480,
            width: 848,
            encoding: "16UC1".into(),
            is_bigendian: 0,
            step: 848 * 2,
            data: depth(848, 480),
        },
    ]
}

fn compressed_images() -> Vec<CompressedImage> {
    vec![
        CompressedImage::default(),
        CompressedImage {
            header: header(10, 20, "camera_color_optical_frame"),
            format: "rgb8; jpeg compressed bgr8".into(),
            data: pattern(7, 2),
        },
        CompressedImage {
            header: header(-1, 1, "🤖"), format: "png".into(), data: pattern(1, 3)
        },
        CompressedImage { header: header(3, 4, "abc"), format: "".into(), data: pattern(4099, 4) },
    ]
}

fn camera_infos() -> Vec<CameraInfo> {
    let k = [615.1, 0.0, 320.5, 0.0, 615.7, 240.25, 0.0, 0.0, 1.0];
    vec![
        CameraInfo::default(),
        CameraInfo {
            header: header(1_763_000_000, 5, "camera_color_optical_frame"),
            height: 480,
            width: 640,
            distortion_model: "plumb_bob".into(),
            d: vec![0.1, -0.25, 0.001, -0.002, 0.0],
            k,
            r: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            p: [615.1, 0.0, 320.5, 0.0, 0.0, 615.7, 240.25, 0.0, 0.0, 0.0, 1.0, 0.0],
            binning_x: 1,
            binning_y: 2,
            roi: RegionOfInterest {
                x_offset: 1,
                y_offset: 2,
                height: 3,
                width: 4,
                do_rectify: true,
            },
        },
        // Model string lengths move the `d` count between offsets 4 and 0 mod 8.
        CameraInfo {
            header: header(0, 0, "x"),
            distortion_model: "rational_polynomial".into(),
            d: vec![1.0 / 3.0, -0.0, f64::MIN_POSITIVE, f64::MAX, -1e-300, 2.5, 3.5, 4.5],
            k,
            ..CameraInfo::default()
        },
        CameraInfo {
            header: header(0, 0, "xy"),
            distortion_model: "equidistant".into(),
            d: vec![0.5],
            ..CameraInfo::default()
        },
        CameraInfo {
            header: header(0, 0, "xyz"),
            distortion_model: "".into(),
            d: vec![],
            roi: RegionOfInterest { do_rectify: true, ..RegionOfInterest::default() },
            ..CameraInfo::default()
        },
    ]
}

fn imus() -> Vec<Imu> {
    let cov = |base: f64| std::array::from_fn(|i| base * (i as f64 + 1.0));
    vec![
        Imu::default(),
        Imu {
            header: header(1_763_000_000, 7, "camera_imu_optical_frame"),
            orientation: Quaternion { x: 0.1, y: -0.2, z: 0.3, w: 0.927 },
            orientation_covariance: cov(-1.0),
            angular_velocity: Vector3 { x: 0.01, y: -0.02, z: 0.03 },
            angular_velocity_covariance: cov(0.001),
            linear_acceleration: Vector3 { x: 0.0, y: 9.80665, z: -0.1 },
            linear_acceleration_covariance: cov(0.01),
        },
        Imu { header: header(2, 3, "imu_ç"), ..Imu::default() },
    ]
}

fn times() -> Vec<Time> {
    vec![Time::default(), Time::new(-1, 999_999_999), Time::new(i32::MAX, u32::MAX)]
}

fn headers() -> Vec<Header> {
    vec![Header::default(), header(1, 2, "a"), header(3, 4, "日本"), header(5, 6, "abcd")]
}

fn rois() -> Vec<RegionOfInterest> {
    vec![
        RegionOfInterest::default(),
        RegionOfInterest { x_offset: u32::MAX, y_offset: 1, height: 2, width: 3, do_rectify: true },
    ]
}

fn quaternions() -> Vec<Quaternion> {
    vec![Quaternion::default(), Quaternion { x: 0.5, y: 0.5, z: -0.5, w: 0.5 }]
}

fn vectors() -> Vec<Vector3> {
    vec![Vector3::default(), Vector3 { x: 1e10, y: -2.5, z: f64::EPSILON }]
}

fn points() -> Vec<Point> {
    vec![Point::default(), Point { x: -1.5, y: 2.25, z: 1e-300 }]
}

fn poses() -> Vec<Pose> {
    vec![Pose::default(), Pose { position: points()[1], orientation: quaternions()[1] }]
}

fn covariance(base: f64) -> [f64; 36] {
    std::array::from_fn(|i| base * (i as f64 - 3.0))
}

fn poses_with_covariance() -> Vec<PoseWithCovariance> {
    vec![
        PoseWithCovariance::default(),
        PoseWithCovariance { pose: poses()[1], covariance: covariance(0.01) },
    ]
}

fn twists() -> Vec<Twist> {
    vec![
        Twist::default(),
        Twist { linear: vectors()[1], angular: Vector3 { x: 0.0, y: 0.0, z: -0.3 } },
    ]
}

fn twists_with_covariance() -> Vec<TwistWithCovariance> {
    vec![
        TwistWithCovariance::default(),
        TwistWithCovariance { twist: twists()[1], covariance: covariance(-2.0) },
    ]
}

fn transforms() -> Vec<Transform> {
    vec![Transform::default(), Transform { translation: vectors()[1], rotation: quaternions()[1] }]
}

fn transforms_stamped() -> Vec<TransformStamped> {
    vec![
        TransformStamped::default(),
        TransformStamped {
            header: header(1_763_000_000, 9, "odom"),
            child_frame_id: "base_link".into(),
            transform: transforms()[1],
        },
        // Odd string lengths move the alignment of the doubles that follow.
        TransformStamped {
            header: header(1, 2, "map"),
            child_frame_id: "x".into(),
            transform: transforms()[1],
        },
    ]
}

fn tf_messages() -> Vec<TFMessage> {
    vec![TFMessage::default(), TFMessage { transforms: transforms_stamped() }]
}

fn odometries() -> Vec<Odometry> {
    vec![
        Odometry::default(),
        Odometry {
            header: header(1_763_000_000, 11, "odom"),
            child_frame_id: "base_link".into(),
            pose: poses_with_covariance()[1],
            twist: twists_with_covariance()[1],
        },
    ]
}

/// Every sample as (type name, JSON fields, our CDR).
fn all_samples() -> Vec<(&'static str, Value, Vec<u8>)> {
    fn add<T: RosMessage>(out: &mut Vec<(&'static str, Value, Vec<u8>)>, msgs: Vec<T>) {
        for msg in msgs {
            let fields = serde_json::to_value(&msg).expect("sample to JSON");
            out.push((T::TYPE_NAME, fields, msg.to_cdr()));
        }
    }
    let mut out = Vec::new();
    add(&mut out, images());
    add(&mut out, compressed_images());
    add(&mut out, camera_infos());
    add(&mut out, imus());
    add(&mut out, times());
    add(&mut out, headers());
    add(&mut out, rois());
    add(&mut out, quaternions());
    add(&mut out, vectors());
    add(&mut out, points());
    add(&mut out, poses());
    add(&mut out, poses_with_covariance());
    add(&mut out, twists());
    add(&mut out, twists_with_covariance());
    add(&mut out, transforms());
    add(&mut out, transforms_stamped());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Index of the first differing byte, for readable failures.
fn first_difference(a: &str, b: &str) -> Option<usize> {
    a.as_bytes()
        .iter()
        .zip(b.as_bytes())
        .position(|(x, y)| x != y)
        .map(|i| i / 2)
        .or_else(|| (a.len() != b.len()).then_some(a.len().min(b.len()) / 2))
}

#[test]
fn cdr_bytes_equal_rclpy() {
    let Some(python) = common::ros2::python("cdr_bytes_equal_rclpy") else {
        return;
    };
    let samples = all_samples();
    let request = json!({
        "messages": samples
            .iter()
            .map(|(ty, fields, ours)| json!({"type": ty, "fields": fields, "ours": hex(ours)}))
            .collect::<Vec<_>>(),
    });
    let answer = common::ros2::reference(&python, &request);
    let messages = answer["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), samples.len());
    let mut garbage = 0;
    let mut per_type = std::collections::BTreeMap::<&str, usize>::new();
    for (i, ((ty, fields, ours), theirs)) in samples.iter().zip(messages).enumerate() {
        let theirs_hex = theirs["cdr"].as_str().expect("cdr hex");
        let ours_hex = hex(ours);
        if ours_hex != theirs_hex {
            let at = first_difference(&ours_hex, theirs_hex).unwrap_or(0);
            let window = |h: &str| {
                let end = ((at + 16) * 2).min(h.len());
                h.get(at.saturating_sub(8) * 2..end).unwrap_or("").to_string()
            };
            panic!(
                "sample {i} ({ty}): CDR differs from rclpy at byte {at} (ours {} bytes, rclpy {})\n\
                 ours:  ...{}\nrclpy: ...{}\nfields: {}",
                ours.len(),
                theirs_hex.len() / 2,
                window(&ours_hex),
                window(theirs_hex),
                fields.to_string().chars().take(400).collect::<String>()
            );
        }
        assert_eq!(
            theirs["ours_decodes_equal"],
            Value::Bool(true),
            "sample {i} ({ty}): rclpy did not decode our bytes to the same message"
        );
        // Our decoder ignores padding contents, as it must for rclpy's uninitialized padding.
        let mut dirty = ours.clone();
        for offset in theirs["padding"].as_array().expect("padding") {
            let offset = offset.as_u64().expect("offset") as usize;
            dirty[4 + offset] = 0xa5;
        }
        assert_eq!(
            decode_as_json(ty, &dirty),
            *fields,
            "sample {i} ({ty}): decoding with garbage padding"
        );
        garbage += theirs["padding_nonzero"].as_u64().unwrap_or(0);
        *per_type.entry(ty).or_default() += 1;
    }
    eprintln!(
        "{} samples byte-identical to rclpy ({per_type:?}); rclpy wrote non-zero garbage in {garbage} padding bytes",
        samples.len()
    );
}

/// Decodes `bytes` as the named type and returns it as JSON (to compare with the sample).
fn decode_as_json(type_name: &str, bytes: &[u8]) -> Value {
    fn go<T: RosMessage>(bytes: &[u8]) -> Value {
        serde_json::to_value(T::from_cdr(bytes).expect("decode")).expect("to JSON")
    }
    match type_name {
        "sensor_msgs/msg/Image" => go::<Image>(bytes),
        "sensor_msgs/msg/CompressedImage" => go::<CompressedImage>(bytes),
        "sensor_msgs/msg/CameraInfo" => go::<CameraInfo>(bytes),
        "sensor_msgs/msg/Imu" => go::<Imu>(bytes),
        "sensor_msgs/msg/RegionOfInterest" => go::<RegionOfInterest>(bytes),
        "std_msgs/msg/Header" => go::<Header>(bytes),
        "builtin_interfaces/msg/Time" => go::<Time>(bytes),
        "geometry_msgs/msg/Quaternion" => go::<Quaternion>(bytes),
        "geometry_msgs/msg/Vector3" => go::<Vector3>(bytes),
        "geometry_msgs/msg/Point" => go::<Point>(bytes),
        "geometry_msgs/msg/Pose" => go::<Pose>(bytes),
        "geometry_msgs/msg/PoseWithCovariance" => go::<PoseWithCovariance>(bytes),
        "geometry_msgs/msg/Twist" => go::<Twist>(bytes),
        "geometry_msgs/msg/TwistWithCovariance" => go::<TwistWithCovariance>(bytes),
        "geometry_msgs/msg/Transform" => go::<Transform>(bytes),
        "geometry_msgs/msg/TransformStamped" => go::<TransformStamped>(bytes),
        "tf2_msgs/msg/TFMessage" => go::<TFMessage>(bytes),
        "nav_msgs/msg/Odometry" => go::<Odometry>(bytes),
        other => panic!("no decoder for {other}"),
    }
}

#[test]
fn definitions_equal_ament_index() {
    let Some(python) = common::ros2::python("definitions_equal_ament_index") else {
        return;
    };
    let ours: Vec<(&str, &str, &str)> = vec![
        (Image::TYPE_NAME, Image::DEFINITION, Image::TYPE_HASH),
        (CompressedImage::TYPE_NAME, CompressedImage::DEFINITION, CompressedImage::TYPE_HASH),
        (CameraInfo::TYPE_NAME, CameraInfo::DEFINITION, CameraInfo::TYPE_HASH),
        (Imu::TYPE_NAME, Imu::DEFINITION, Imu::TYPE_HASH),
        (RegionOfInterest::TYPE_NAME, RegionOfInterest::DEFINITION, RegionOfInterest::TYPE_HASH),
        (Header::TYPE_NAME, Header::DEFINITION, Header::TYPE_HASH),
        (Time::TYPE_NAME, Time::DEFINITION, Time::TYPE_HASH),
        (Quaternion::TYPE_NAME, Quaternion::DEFINITION, Quaternion::TYPE_HASH),
        (Vector3::TYPE_NAME, Vector3::DEFINITION, Vector3::TYPE_HASH),
        (Point::TYPE_NAME, Point::DEFINITION, Point::TYPE_HASH),
        (Pose::TYPE_NAME, Pose::DEFINITION, Pose::TYPE_HASH),
        (
            PoseWithCovariance::TYPE_NAME,
            PoseWithCovariance::DEFINITION,
            PoseWithCovariance::TYPE_HASH,
        ),
        (Twist::TYPE_NAME, Twist::DEFINITION, Twist::TYPE_HASH),
        (
            TwistWithCovariance::TYPE_NAME,
            TwistWithCovariance::DEFINITION,
            TwistWithCovariance::TYPE_HASH,
        ),
        (Transform::TYPE_NAME, Transform::DEFINITION, Transform::TYPE_HASH),
        (TransformStamped::TYPE_NAME, TransformStamped::DEFINITION, TransformStamped::TYPE_HASH),
    ];
    let request = json!({"types": ours.iter().map(|(name, _, _)| name).collect::<Vec<_>>()});
    let answer = common::ros2::reference(&python, &request);
    for (name, definition, hash) in &ours {
        let theirs = &answer["types"][name];
        let text = theirs["definition"].as_str().expect("definition");
        if text != *definition {
            let at = definition
                .bytes()
                .zip(text.bytes())
                .position(|(a, b)| a != b)
                .unwrap_or(definition.len().min(text.len()));
            panic!(
                "{name}: definition differs from the ament index at byte {at}:\nours:  {:?}\nindex: {:?}",
                definition.get(at.saturating_sub(40)..(at + 40).min(definition.len())),
                text.get(at.saturating_sub(40)..(at + 40).min(text.len())),
            );
        }
        assert_eq!(theirs["hash"].as_str(), Some(*hash), "{name}: type hash");
    }
}

// ------------------------------------------------------------------ round trips

fn round_trip<T: RosMessage + PartialEq + Debug>(msgs: Vec<T>) {
    for msg in msgs {
        let bytes = msg.to_cdr();
        assert_eq!(bytes[..4], [0, 1, 0, 0], "{}: encapsulation header", T::TYPE_NAME);
        assert_eq!(T::from_cdr(&bytes).expect("decode"), msg, "{}", T::TYPE_NAME);
        assert_eq!(msg.try_to_cdr().expect("try_to_cdr"), bytes);
        // Appending to a buffer that already holds 5 bytes: alignment counts from the header.
        let mut buf = vec![9; 5];
        msg.write_cdr(&mut buf).expect("write_cdr");
        assert_eq!(buf[5..], bytes[..], "{}: write_cdr", T::TYPE_NAME);
        // Up to 3 bytes of final padding are accepted, 4 are not.
        let mut padded = bytes.clone();
        padded.extend([0; 3]);
        assert_eq!(T::from_cdr(&padded).expect("decode padded"), msg);
        padded.push(0);
        assert!(matches!(T::from_cdr(&padded), Err(CodecError::TrailingBytes(4))));
    }
}

#[test]
fn round_trip_every_type() {
    round_trip(images());
    round_trip(compressed_images());
    round_trip(camera_infos());
    round_trip(imus());
    round_trip(times());
    round_trip(headers());
    round_trip(rois());
    round_trip(quaternions());
    round_trip(vectors());
    round_trip(points());
    round_trip(poses());
    round_trip(poses_with_covariance());
    round_trip(twists());
    round_trip(twists_with_covariance());
    round_trip(transforms());
    round_trip(transforms_stamped());
    // Not in the ROS 2 venv (no tf2_msgs wheel on PyPI; nav_msgs not installed there), so
    // only round-tripped here; their parts are compared with rclpy above.
    round_trip(tf_messages());
    round_trip(odometries());
}

#[test]
fn round_trip_padding_edge_cases() {
    // Every combination of short frame_id / encoding / data lengths: each moves the alignment
    // of what follows.
    for id_len in 0..6 {
        for enc_len in 0..6 {
            for data_len in 0..10 {
                let frame_id: String = "främe".chars().cycle().take(id_len).collect();
                let image = Image {
                    header: header(id_len as i32, enc_len as u32, &frame_id),
                    height: 1,
                    width: data_len as u32,
                    encoding: "x".repeat(enc_len),
                    is_bigendian: 1,
                    step: data_len as u32,
                    data: pattern(data_len, data_len as u32),
                };
                round_trip(vec![image.clone()]);
                round_trip(vec![CompressedImage {
                    header: image.header.clone(),
                    format: image.encoding.clone(),
                    data: image.data.clone(),
                }]);
                round_trip(vec![CameraInfo {
                    header: image.header,
                    distortion_model: image.encoding,
                    d: (0..data_len).map(|i| i as f64 * 0.5).collect(),
                    ..CameraInfo::default()
                }]);
            }
        }
    }
}

#[test]
fn golden_bytes_from_rclpy() {
    // rclpy.serialization.serialize_message(Image(header=Header(stamp=Time(sec=1, nanosec=2),
    // frame_id='cam'), height=1, width=3, encoding='mono8', step=3, data=[1, 2, 3])), ROS 2
    // Kilted wheels (its one padding byte, after `is_bigendian`, happened to be 0). Runs
    // without ROS.
    let image = Image {
        header: header(1, 2, "cam"),
        height: 1,
        width: 3,
        encoding: "mono8".into(),
        is_bigendian: 0,
        step: 3,
        data: vec![1, 2, 3],
    };
    assert_eq!(
        hex(&image.to_cdr()),
        "0001000001000000020000000400000063616d000100000003000000060000006d6f6e6f38000000\
         0300000003000000010203"
    );
}

#[test]
fn nan_and_signed_zero_survive() {
    let imu = Imu {
        orientation: Quaternion { x: f64::NAN, y: -0.0, z: f64::INFINITY, w: f64::NEG_INFINITY },
        ..Imu::default()
    };
    let back = Imu::from_cdr(&imu.to_cdr()).expect("decode");
    let bits = |q: Quaternion| [q.x, q.y, q.z, q.w].map(f64::to_bits);
    assert_eq!(bits(back.orientation), bits(imu.orientation));
}

#[test]
fn defaults_and_time_helpers() {
    assert_eq!(Quaternion::default().w, 1.0, "geometry_msgs/Quaternion: float64 w 1");
    assert_eq!(Time::from_nanos(-1), Time::new(-1, 999_999_999));
    assert_eq!(Time::from_nanos(1_500_000_000), Time::new(1, 500_000_000));
    for nanos in [0, 1, -1, 1_763_000_000_123_456_789, -2_000_000_000] {
        assert_eq!(Time::from_nanos(nanos).to_nanos(), nanos);
    }
    assert_eq!(Time::from_nanos(i64::MAX), Time::new(i32::MAX, 999_999_999));
    assert_eq!(Time::from_nanos(i64::MIN), Time::new(i32::MIN, 0));
    let now = Time::now();
    assert!(now.sec > 1_700_000_000 && now.nanosec < 1_000_000_000);
}

// ------------------------------------------------------------------ malformed input

/// Decodes as the named type; only whether it failed matters.
fn decode_is_err(type_name: &str, bytes: &[u8]) -> bool {
    match type_name {
        "sensor_msgs/msg/Image" => Image::from_cdr(bytes).is_err(),
        "sensor_msgs/msg/CompressedImage" => CompressedImage::from_cdr(bytes).is_err(),
        "sensor_msgs/msg/CameraInfo" => CameraInfo::from_cdr(bytes).is_err(),
        "sensor_msgs/msg/Imu" => Imu::from_cdr(bytes).is_err(),
        "sensor_msgs/msg/RegionOfInterest" => RegionOfInterest::from_cdr(bytes).is_err(),
        "std_msgs/msg/Header" => Header::from_cdr(bytes).is_err(),
        "builtin_interfaces/msg/Time" => Time::from_cdr(bytes).is_err(),
        "geometry_msgs/msg/Quaternion" => Quaternion::from_cdr(bytes).is_err(),
        "geometry_msgs/msg/Vector3" => Vector3::from_cdr(bytes).is_err(),
        "geometry_msgs/msg/Point" => Point::from_cdr(bytes).is_err(),
        "geometry_msgs/msg/Pose" => Pose::from_cdr(bytes).is_err(),
        "geometry_msgs/msg/PoseWithCovariance" => PoseWithCovariance::from_cdr(bytes).is_err(),
        "geometry_msgs/msg/Twist" => Twist::from_cdr(bytes).is_err(),
        "geometry_msgs/msg/TwistWithCovariance" => TwistWithCovariance::from_cdr(bytes).is_err(),
        "geometry_msgs/msg/Transform" => Transform::from_cdr(bytes).is_err(),
        "geometry_msgs/msg/TransformStamped" => TransformStamped::from_cdr(bytes).is_err(),
        "tf2_msgs/msg/TFMessage" => TFMessage::from_cdr(bytes).is_err(),
        "nav_msgs/msg/Odometry" => Odometry::from_cdr(bytes).is_err(),
        other => panic!("no decoder for {other}"),
    }
}

const TYPE_NAMES: [&str; 18] = [
    "sensor_msgs/msg/Image",
    "sensor_msgs/msg/CompressedImage",
    "sensor_msgs/msg/CameraInfo",
    "sensor_msgs/msg/Imu",
    "sensor_msgs/msg/RegionOfInterest",
    "std_msgs/msg/Header",
    "builtin_interfaces/msg/Time",
    "geometry_msgs/msg/Quaternion",
    "geometry_msgs/msg/Vector3",
    "geometry_msgs/msg/Point",
    "geometry_msgs/msg/Pose",
    "geometry_msgs/msg/PoseWithCovariance",
    "geometry_msgs/msg/Twist",
    "geometry_msgs/msg/TwistWithCovariance",
    "geometry_msgs/msg/Transform",
    "geometry_msgs/msg/TransformStamped",
    "tf2_msgs/msg/TFMessage",
    "nav_msgs/msg/Odometry",
];

/// The allocation bound for decoding `len` input bytes: owned strings and byte vectors are at
/// most the input; serde preallocates at most one element (8 bytes for f64) per byte left.
fn allocation_bound(len: usize) -> usize {
    8 * len + 1024
}

#[test]
fn truncated_input_is_an_error() {
    for (ty, _, bytes) in all_samples() {
        let cuts: Vec<usize> = if bytes.len() <= 8192 {
            (0..bytes.len()).collect()
        } else {
            (0..512).chain(bytes.len() - 512..bytes.len()).collect()
        };
        for cut in cuts {
            let (failed, largest) = largest_allocation(|| decode_is_err(ty, &bytes[..cut]));
            assert!(failed, "{ty}: {cut} of {} bytes decoded", bytes.len());
            assert!(
                largest <= allocation_bound(cut),
                "{ty}: allocated {largest} bytes for {cut} input bytes"
            );
        }
    }
}

#[test]
fn bad_encapsulation_headers() {
    let good = images()[1].to_cdr();
    for header in [
        &[][..],
        &[0],
        &[0, 1, 0],
        &[0, 0, 0, 0], // CDR big-endian
        &[1, 0, 0, 0], // garbage
        &[0, 3, 0, 0], // PL_CDR little-endian
        &[0, 7, 0, 0], // XCDR2 little-endian (DELIMITED_CDR2)
        &[0xff, 0xff, 0xff, 0xff],
    ] {
        let mut bytes = header.to_vec();
        if header.len() == 4 {
            bytes.extend_from_slice(&good[4..]);
        }
        assert!(
            matches!(Image::from_cdr(&bytes), Err(CodecError::BadEncapsulation(_))),
            "header {header:02x?}"
        );
    }
    // Options bytes are not checked (some writers put padding counts there).
    let mut with_options = good.clone();
    with_options[3] = 1;
    assert!(Image::from_cdr(&with_options).is_ok());
}

#[test]
fn absurd_lengths_are_rejected_without_allocating() {
    let image = images()[2].clone();
    let bytes = image.to_cdr();
    // frame_id length at body offset 8.
    let mut huge_string = bytes.clone();
    huge_string[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    let (result, largest) = largest_allocation(|| Image::from_cdr(&huge_string));
    assert!(
        matches!(result, Err(CodecError::LengthTooLarge { offset: 8, len: u32::MAX, .. })),
        "{result:?}"
    );
    assert!(largest < 4096, "allocated {largest}");

    // data count: the last u32 before the data.
    let count_at = bytes.len() - image.data.len() - 4;
    for count in [u32::MAX, 0x7fff_ffff, image.data.len() as u32 + 1] {
        let mut huge_data = bytes.clone();
        huge_data[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
        let (result, largest) = largest_allocation(|| Image::from_cdr(&huge_data));
        assert!(matches!(result, Err(CodecError::LengthTooLarge { .. })), "{result:?}");
        assert!(largest < 4096, "allocated {largest}");
    }

    // CameraInfo `d` count, a sequence of f64.
    let info = camera_infos()[1].clone();
    let bytes = info.to_cdr();
    let d_bytes: Vec<u8> = info.d.iter().flat_map(|v| v.to_le_bytes()).collect();
    let d_at = bytes.windows(d_bytes.len()).position(|w| w == d_bytes).expect("d in the encoding");
    // The count sits 4 bytes (plus 0 or 4 bytes of padding) before the first element.
    let count_at = (d_at - 8..d_at - 3)
        .rev()
        .find(|&at| bytes[at..at + 4] == (info.d.len() as u32).to_le_bytes())
        .expect("d count");
    let mut huge_d = bytes.clone();
    huge_d[count_at..count_at + 4].copy_from_slice(&0x1000_0000u32.to_le_bytes());
    let (result, largest) = largest_allocation(|| CameraInfo::from_cdr(&huge_d));
    assert!(matches!(result, Err(CodecError::LengthTooLarge { .. })), "{result:?}");
    assert!(largest < 4096, "allocated {largest}");
}

#[test]
fn invalid_values_are_errors() {
    let roi = rois()[1];
    let mut bytes = roi.to_cdr();
    *bytes.last_mut().expect("do_rectify") = 2;
    assert!(matches!(
        RegionOfInterest::from_cdr(&bytes),
        Err(CodecError::InvalidBool { value: 2, .. })
    ));

    let mut bytes = header(1, 2, "abc").to_cdr();
    bytes[16] = 0xff; // 'a'
    assert!(matches!(Header::from_cdr(&bytes), Err(CodecError::InvalidUtf8 { offset: 8 })));
    let mut bytes = header(1, 2, "abc").to_cdr();
    bytes[19] = b'!'; // the NUL
    assert!(matches!(Header::from_cdr(&bytes), Err(CodecError::StringNotTerminated { offset: 8 })));
}

#[test]
fn random_corruption_never_panics() {
    let samples: Vec<(&str, Value, Vec<u8>)> =
        all_samples().into_iter().filter(|(_, _, bytes)| bytes.len() <= 8192).collect();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut decoded = 0usize;
    for (_, _, bytes) in &samples {
        for _ in 0..200 {
            let mut corrupt = bytes.clone();
            for _ in 0..1 + next() % 4 {
                let at = 4 + (next() as usize) % (corrupt.len() - 4).max(1);
                if at < corrupt.len() {
                    corrupt[at] = next() as u8;
                }
            }
            if next() % 4 == 0 {
                corrupt.truncate((next() as usize) % (corrupt.len() + 1));
            }
            for ty in TYPE_NAMES {
                let (_, largest) = largest_allocation(|| decode_is_err(ty, &corrupt));
                assert!(largest <= allocation_bound(corrupt.len()));
                decoded += 1;
            }
        }
    }
    assert!(decoded > 10_000);
}

#[test]
fn generic_cdr_rejects_what_ros_cannot_express() {
    assert!(matches!(cdr::to_vec(&Some(1u32)), Err(CodecError::Unsupported(_))));
    assert!(matches!(cdr::to_vec(&'x'), Err(CodecError::Unsupported(_))));
    assert!(matches!(
        cdr::from_slice::<serde_json::Value>(&[0, 1, 0, 0, 1]),
        Err(CodecError::Unsupported(_))
    ));
}

// ------------------------------------------------------------------ zstd

#[test]
fn zstd_levels_and_round_trip() {
    for level in [i32::MIN, -1, 0, 23, 100] {
        assert!(matches!(
            validate_zstd_level(level),
            Err(CodecError::ZstdLevel(l)) if l == level
        ));
        assert!(matches!(zstd_compress(b"abc", level), Err(CodecError::ZstdLevel(_))));
        assert!(ZstdCompressor::new(level).is_err());
    }
    let cdr_bytes = images()[5].to_cdr();
    for level in [1, 3, 19, 22] {
        let mut compressor = ZstdCompressor::new(level).expect("level");
        assert_eq!(compressor.level(), level);
        let packed = compressor.compress(&cdr_bytes).expect("compress");
        assert!(packed.len() < cdr_bytes.len() / 2, "level {level}: {}", packed.len());
        assert_eq!(zstd_compress(&cdr_bytes, level).expect("compress"), packed);
        let unpacked = zstd_decompress(&packed, 4 << 20).expect("decompress");
        assert_eq!(unpacked, cdr_bytes);
        assert_eq!(Image::from_cdr(&unpacked).expect("decode"), images()[5]);
    }
    let packed = zstd_compress(&cdr_bytes, 1).expect("compress");
    let (result, largest) = largest_allocation(|| zstd_decompress(&packed, 1000));
    assert!(matches!(result, Err(CodecError::DecompressedTooLarge { limit: 1000 })));
    assert!(largest < 1 << 20, "allocated {largest}");
    assert!(zstd_decompress(&packed[..packed.len() - 10], 4 << 20).is_err());
    assert!(zstd_decompress(&cdr_bytes[..100], 4 << 20).is_err());

    assert_eq!(zstd_encoding("cdr"), "cdr+zstd");
    assert_eq!(strip_zstd_encoding("cdr+zstd"), Some("cdr"));
    assert_eq!(strip_zstd_encoding("json+zstd"), Some("json"));
    assert_eq!(strip_zstd_encoding("cdr"), None);
    assert_eq!(strip_zstd_encoding("+zstd"), None);
}

// ------------------------------------------------------------------ JPEG / PNG

fn raw(encoding: &str, width: u32, height: u32, step: u32, data: Vec<u8>) -> Image {
    Image {
        header: header(42, 7, "camera_color_optical_frame"),
        height,
        width,
        encoding: encoding.into(),
        is_bigendian: 0,
        step,
        data,
    }
}

fn swap_rb(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks_exact(3).flat_map(|p| [p[2], p[1], p[0]]).collect()
}

fn decode(compressed: &CompressedImage) -> image::DynamicImage {
    image::load_from_memory(&compressed.data).expect("decode compressed image")
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as f64).sum::<f64>() / a.len() as f64
}

#[test]
fn png_decodes_back_exactly() {
    let (w, h) = (37, 21); // odd sizes
    let rgb = gradient(w, h, 3);
    for compression in [PngCompression::Fast, PngCompression::Default, PngCompression::Best] {
        let c = encode_png(&raw("rgb8", w, h, w * 3, rgb.clone()), compression).expect("png");
        assert_eq!(c.format, "rgb8; png compressed bgr8");
        assert_eq!(c.header, header(42, 7, "camera_color_optical_frame"));
        let back = decode(&c);
        assert_eq!((back.width(), back.height()), (w, h));
        assert_eq!(back.to_rgb8().into_raw(), rgb);
    }
    let c =
        encode_png(&raw("bgr8", w, h, w * 3, swap_rb(&rgb)), PngCompression::Fast).expect("png");
    assert_eq!(c.format, "bgr8; png compressed bgr8");
    assert_eq!(decode(&c).to_rgb8().into_raw(), rgb);

    let mono = gradient(w, h, 1);
    let c = encode_png(&raw("mono8", w, h, w, mono.clone()), PngCompression::Fast).expect("png");
    assert_eq!(c.format, "mono8; png compressed ");
    assert_eq!(decode(&c).to_luma8().into_raw(), mono);

    // 16-bit depth, little- and big-endian, with padded rows.
    let values: Vec<u16> =
        depth(w, h).chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
    for (encoding, big_endian, pad) in
        [("16UC1", false, 0), ("mono16", true, 6), ("16UC1", true, 2)]
    {
        let step = w * 2 + pad;
        let mut data = Vec::new();
        for row in values.chunks_exact(w as usize) {
            for v in row {
                data.extend(if big_endian { v.to_be_bytes() } else { v.to_le_bytes() });
            }
            data.extend(std::iter::repeat_n(0xee, pad as usize));
        }
        let mut image = raw(encoding, w, h, step, data);
        image.is_bigendian = u8::from(big_endian);
        let c = compress_image(&image, ImageCodec::Png { compression: PngCompression::Fast })
            .expect("png");
        assert_eq!(c.format, format!("{encoding}; png compressed "));
        let back = decode(&c);
        assert_eq!(back.color(), image::ColorType::L16);
        assert_eq!(back.to_luma16().into_raw(), values, "{encoding} be={big_endian} pad={pad}");
    }
}

#[test]
fn jpeg_decodes_back_within_tolerance() {
    let (w, h) = (64, 48);
    let rgb = gradient(w, h, 3);
    let q80 = encode_jpeg(&raw("rgb8", w, h, w * 3, rgb.clone()), 80).expect("jpeg");
    assert_eq!(q80.format, "rgb8; jpeg compressed bgr8");
    assert_eq!(&q80.data[..2], &[0xff, 0xd8], "JPEG SOI marker");
    let back = decode(&q80);
    assert_eq!((back.width(), back.height()), (w, h));
    let err80 = mean_abs_diff(&back.to_rgb8().into_raw(), &rgb);
    assert!(err80 < 4.0, "q80 mean error {err80}");

    let bgr =
        compress_image(&raw("bgr8", w, h, w * 3, swap_rb(&rgb)), ImageCodec::Jpeg { quality: 80 })
            .expect("jpeg");
    assert_eq!(bgr.format, "bgr8; jpeg compressed bgr8");
    assert!(mean_abs_diff(&decode(&bgr).to_rgb8().into_raw(), &rgb) < 4.0);

    let q10 = encode_jpeg(&raw("rgb8", w, h, w * 3, rgb.clone()), 10).expect("jpeg");
    let q100 = encode_jpeg(&raw("rgb8", w, h, w * 3, rgb.clone()), 100).expect("jpeg");
    let err10 = mean_abs_diff(&decode(&q10).to_rgb8().into_raw(), &rgb);
    let err100 = mean_abs_diff(&decode(&q100).to_rgb8().into_raw(), &rgb);
    assert!(err100 < err80 && err80 < err10, "errors q100 {err100} q80 {err80} q10 {err10}");
    assert!(q10.data.len() < q80.data.len() && q80.data.len() < q100.data.len());

    // Padded rows and mono.
    let mono = gradient(w, h, 1);
    let mut padded = Vec::new();
    for row in mono.chunks_exact(w as usize) {
        padded.extend_from_slice(row);
        padded.extend([0xff; 3]);
    }
    let c = encode_jpeg(&raw("mono8", w, h, w + 3, padded), 90).expect("jpeg");
    assert_eq!(c.format, "mono8; jpeg compressed ");
    let back = decode(&c);
    assert_eq!(back.color(), image::ColorType::L8);
    assert!(mean_abs_diff(&back.to_luma8().into_raw(), &mono) < 3.0);
}

#[test]
fn image_encoding_errors() {
    let rgb = raw("rgb8", 4, 2, 12, gradient(4, 2, 3));
    for quality in [0, 101, 255] {
        assert!(matches!(
            encode_jpeg(&rgb, quality),
            Err(CodecError::JpegQuality(q)) if q == quality
        ));
    }
    for encoding in ["16UC1", "mono16", "32FC1", "yuv422", "rgba8", ""] {
        let image = raw(encoding, 4, 2, 12, vec![0; 24]);
        assert!(
            matches!(encode_jpeg(&image, 80), Err(CodecError::UnsupportedEncoding { .. })),
            "jpeg {encoding}"
        );
    }
    for encoding in ["32FC1", "yuv422", "bayer_rggb8", ""] {
        let image = raw(encoding, 4, 2, 16, vec![0; 32]);
        assert!(
            matches!(
                encode_png(&image, PngCompression::Fast),
                Err(CodecError::UnsupportedEncoding { .. })
            ),
            "png {encoding}"
        );
    }
    // Data length must be height * step; step at least width * bytes/pixel.
    for (step, len) in [(12, 23), (12, 25), (12, 0), (11, 22), (13, 24)] {
        let image = raw("rgb8", 4, 2, step, vec![0; len]);
        let err = encode_jpeg(&image, 80).expect_err("geometry");
        assert!(matches!(err, CodecError::ImageGeometry { .. }), "{err}");
        assert!(encode_png(&image, PngCompression::Fast).is_err());
    }
    assert!(encode_png(&raw("16UC1", 3, 1, 5, vec![0; 5]), PngCompression::Fast).is_err());
    assert!(encode_png(&raw("mono8", 0, 0, 0, vec![]), PngCompression::Fast).is_err());
    // Absurd dimensions are errors, not panics or huge allocations.
    let huge = raw("mono8", u32::MAX, u32::MAX, u32::MAX, vec![0; 16]);
    let (result, largest) = largest_allocation(|| encode_jpeg(&huge, 80));
    assert!(matches!(result, Err(CodecError::ImageGeometry { .. })));
    assert!(largest < 4096);
}

// ------------------------------------------------------------------ timings
