//! The `synthetic` source: a camera without hardware, publishing what the ROS 2 RealSense
//! driver publishes (16UC1 depth, rgb8 color, their CameraInfo) plus telemetry: an IMU, and
//! optionally `/tf` and `/odom` of a robot driving in a circle.
//! Frames are deterministic functions of the frame number, which is also drawn into both
//! images, so a recording shows which frame is which.

use super::{
    MessageType, Payload, Sample, SampleSender, Shutdown, Source, SourceError, TopicInfo, encoded,
    header,
};
use crate::codec::MESSAGE_ENCODING;
use crate::codec::ros::{
    CameraInfo, Header, Image, Imu, Odometry, Point, Pose, PoseWithCovariance, Quaternion,
    RegionOfInterest, TFMessage, Transform, TransformStamped, Twist, TwistWithCovariance, Vector3,
};
use crate::util::now_ns;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// `[[sources]] type = "synthetic"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Source name.
    pub name: String,
    /// Topic prefix.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Image width in pixels (depth, and color unless `color_width` is set).
    #[serde(default = "default_width")]
    pub width: u32,
    /// Image height in pixels (depth, and color unless `color_height` is set).
    #[serde(default = "default_height")]
    pub height: u32,
    /// Color image width, when it differs from depth (a RealSense: 1280 with depth at 848).
    pub color_width: Option<u32>,
    /// Color image height, when it differs from depth.
    pub color_height: Option<u32>,
    /// Frames per second.
    #[serde(default = "default_fps")]
    pub fps: f64,
    /// Publish depth and its camera info.
    #[serde(default = "crate::util::default_true")]
    pub depth: bool,
    /// Publish color and its camera info.
    #[serde(default = "crate::util::default_true")]
    pub color: bool,
    /// IMU messages per second; 0 turns them off.
    #[serde(default = "default_imu_hz")]
    pub imu_hz: f64,
    /// `/tf` messages per second; 0 (the default) turns them off.
    #[serde(default)]
    pub tf_hz: f64,
    /// `/odom` messages per second; 0 (the default) turns them off.
    #[serde(default)]
    pub odom_hz: f64,
}

/// `/tf` and `/odom` are the robot's, not the camera's: ROS puts them at the root, whatever
/// the camera's namespace.
const TF_TOPIC: &str = "/tf";
const ODOM_TOPIC: &str = "/odom";

fn default_namespace() -> String {
    "/camera".into()
}
fn default_width() -> u32 {
    848
}
fn default_height() -> u32 {
    480
}
fn default_fps() -> f64 {
    30.0
}
fn default_imu_hz() -> f64 {
    10.0
}

impl SyntheticConfig {
    /// Checks the values serde cannot, naming the key relative to this source's table.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, message: String| Err((key.to_string(), message));
        for (key, (w, h)) in [("width", self.depth_size()), ("color_width", self.color_size())] {
            if !(1..=8192).contains(&w) || !(1..=8192).contains(&h) {
                return bad(key, format!("{w}x{h} is not 1..=8192 each"));
            }
        }
        if !(self.fps.is_finite() && self.fps > 0.0 && self.fps <= 1000.0) {
            return bad("fps", format!("{} is not in (0, 1000]", self.fps));
        }
        for (key, hz) in [("imu_hz", self.imu_hz), ("tf_hz", self.tf_hz), ("odom_hz", self.odom_hz)]
        {
            if !(hz.is_finite() && (0.0..=10_000.0).contains(&hz)) {
                return bad(key, format!("{hz} is not in [0, 10000]"));
            }
        }
        if !self.namespace.starts_with('/') {
            return bad("namespace", format!("'{}' must start with '/'", self.namespace));
        }
        Ok(())
    }

    /// Depth image size.
    pub fn depth_size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Color image size.
    pub fn color_size(&self) -> (u32, u32) {
        (self.color_width.unwrap_or(self.width), self.color_height.unwrap_or(self.height))
    }

    fn topic(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.namespace.trim_end_matches('/'))
    }
}

/// The synthetic camera.
pub struct SyntheticSource {
    config: SyntheticConfig,
}

impl SyntheticSource {
    /// A source from its (validated) config.
    pub fn new(config: SyntheticConfig) -> Self {
        Self { config }
    }

    fn topic_list(&self) -> Vec<(String, Arc<MessageType>)> {
        let c = &self.config;
        let mut topics = Vec::new();
        if c.depth {
            topics.push((c.topic("depth/image_rect_raw"), MessageType::of::<Image>()));
            topics.push((c.topic("depth/camera_info"), MessageType::of::<CameraInfo>()));
        }
        if c.color {
            topics.push((c.topic("color/image_raw"), MessageType::of::<Image>()));
            topics.push((c.topic("color/camera_info"), MessageType::of::<CameraInfo>()));
        }
        if c.imu_hz > 0.0 {
            topics.push((c.topic("imu"), MessageType::of::<Imu>()));
        }
        if c.tf_hz > 0.0 {
            topics.push((TF_TOPIC.into(), MessageType::of::<TFMessage>()));
        }
        if c.odom_hz > 0.0 {
            topics.push((ODOM_TOPIC.into(), MessageType::of::<Odometry>()));
        }
        topics
    }
}

#[async_trait::async_trait]
impl Source for SyntheticSource {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn topics(&self) -> Result<Vec<TopicInfo>, SourceError> {
        Ok(self
            .topic_list()
            .into_iter()
            .map(|(topic, message_type)| TopicInfo {
                topic,
                message_type,
                encoding: MESSAGE_ENCODING.into(),
            })
            .collect())
    }

    async fn run(
        self: Box<Self>,
        out: SampleSender,
        shutdown: Shutdown,
    ) -> Result<(), SourceError> {
        let types: HashMap<String, Arc<MessageType>> = self.topic_list().into_iter().collect();
        let config = Arc::new(self.config);
        let types = Arc::new(types);
        let telemetry = |hz: f64, topic: String, message: fn(u64, f64, u64) -> Payload| Telemetry {
            source: config.name.clone(),
            hz,
            topic,
            message,
            types: types.clone(),
            out: out.clone(),
            shutdown: shutdown.clone(),
        };
        let imu = telemetry(config.imu_hz, config.topic("imu"), |n, _, stamp_ns| {
            encoded(&imu_message(n, header(stamp_ns, "camera_imu_optical_frame")))
        });
        let tf = telemetry(config.tf_hz, TF_TOPIC.into(), |_, t, stamp_ns| {
            encoded(&tf_message(t, stamp_ns))
        });
        let odom = telemetry(config.odom_hz, ODOM_TOPIC.into(), |_, t, stamp_ns| {
            encoded(&odometry(t, stamp_ns))
        });
        // Independent loops: drawing a frame must not delay the telemetry.
        tokio::join!(
            camera_loop(config.clone(), types.clone(), out.clone(), shutdown.clone()),
            imu.run(),
            tf.run(),
            odom.run(),
        );
        Ok(())
    }
}

/// A sample of one of this source's topics.
fn sample(
    source: &str,
    types: &HashMap<String, Arc<MessageType>>,
    topic: String,
    payload: Payload,
    stamp_ns: u64,
) -> Sample {
    Sample {
        source: source.into(),
        message_type: types[&topic].clone(),
        topic: topic.into(),
        encoding: MESSAGE_ENCODING.into(),
        payload,
        stamp_ns,
    }
}

/// Sends samples in order; false once the pipeline is gone.
async fn send_all(out: &SampleSender, samples: Vec<Sample>) -> bool {
    for sample in samples {
        if out.send(sample).await.is_err() {
            return false;
        }
    }
    true
}

async fn camera_loop(
    c: Arc<SyntheticConfig>,
    types: Arc<HashMap<String, Arc<MessageType>>>,
    out: SampleSender,
    mut shutdown: Shutdown,
) {
    if !c.depth && !c.color {
        return;
    }
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / c.fps));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    for frame in 0u64.. {
        tokio::select! {
            _ = crate::util::stopped(&mut shutdown) => return,
            _ = ticks.tick() => {}
        }
        let (config, types) = (c.clone(), types.clone());
        let drawn = crate::util::bulk_work(move || {
            let c = config;
            let stamp_ns = now_ns();
            let mut samples = Vec::new();
            if c.depth {
                let header = header(stamp_ns, "camera_depth_optical_frame");
                let (w, h) = c.depth_size();
                let image = Payload::Image(Arc::new(depth_image(w, h, frame, header.clone())));
                samples.push(sample(
                    &c.name,
                    &types,
                    c.topic("depth/image_rect_raw"),
                    image,
                    stamp_ns,
                ));
                let info = encoded(&camera_info(w, h, header));
                samples.push(sample(&c.name, &types, c.topic("depth/camera_info"), info, stamp_ns));
            }
            if c.color {
                let header = header(stamp_ns, "camera_color_optical_frame");
                let (w, h) = c.color_size();
                let image = Payload::Image(Arc::new(color_image(w, h, frame, header.clone())));
                samples.push(sample(&c.name, &types, c.topic("color/image_raw"), image, stamp_ns));
                let info = encoded(&camera_info(w, h, header));
                samples.push(sample(&c.name, &types, c.topic("color/camera_info"), info, stamp_ns));
            }
            samples
        })
        .await;
        let samples = match drawn {
            Ok(samples) => samples,
            Err(err) => {
                tracing::error!("synthetic camera '{}' stopped: {err}", c.name);
                return;
            }
        };
        if !send_all(&out, samples).await {
            return;
        }
    }
}

/// One periodic telemetry topic.
struct Telemetry {
    source: String,
    /// Messages per second; 0 = off.
    hz: f64,
    topic: String,
    /// The message for sequence number n, at t seconds since the first, stamped stamp_ns.
    message: fn(u64, f64, u64) -> Payload,
    types: Arc<HashMap<String, Arc<MessageType>>>,
    out: SampleSender,
    shutdown: Shutdown,
}

impl Telemetry {
    async fn run(mut self) {
        if self.hz <= 0.0 {
            return;
        }
        let period = 1.0 / self.hz;
        // Like a sensor with its own clock, every sample is stamped when it is due and none is
        // skipped: a busy host reads samples late (and in a burst), never not at all, so gaps
        // a subscriber sees in the stamps are frames lost on the way.
        let (start, start_ns) = (tokio::time::Instant::now(), now_ns());
        let mut ticks = tokio::time::interval_at(start, Duration::from_secs_f64(period));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for n in 0u64.. {
            let due = tokio::select! {
                _ = crate::util::stopped(&mut self.shutdown) => return,
                due = ticks.tick() => due,
            };
            let stamp_ns = start_ns + (due - start).as_nanos() as u64;
            // Motion follows the sequence number, so every run draws the same path.
            let payload = (self.message)(n, n as f64 * period, stamp_ns);
            let sample = sample(&self.source, &self.types, self.topic.clone(), payload, stamp_ns);
            if !send_all(&self.out, vec![sample]).await {
                return;
            }
        }
    }
}

/// Depth in millimetres: a plane receding from 0.5 m to 4 m across the image with a wave
/// that travels one pixel per frame, and the frame number drawn at 0.3 m.
pub fn depth_image(width: u32, height: u32, frame: u64, header: Header) -> Image {
    let (w, h) = (width as usize, height as usize);
    // Rows repeat every 16: draw those and copy them, which keeps a debug build (the tests')
    // drawing at 30 fps without a core of its own.
    let bands: Vec<Vec<u8>> = (0..16u32)
        .map(|band| {
            (0..w)
                .flat_map(|x| {
                    let base = 500 + (3500 * x / w.max(1)) as u32;
                    let wave = ((x as u64 + frame) % 64) as u32 * 4;
                    ((base + wave + band) as u16).to_le_bytes()
                })
                .collect()
        })
        .collect();
    let mut data = Vec::with_capacity(w * h * 2);
    for y in 0..h {
        data.extend_from_slice(&bands[y % 16]);
    }
    draw_number(frame, w, h, |x, y| {
        data[(y * w + x) * 2..][..2].copy_from_slice(&300u16.to_le_bytes())
    });
    Image {
        header,
        height,
        width,
        encoding: "16UC1".into(),
        is_bigendian: 0,
        step: width * 2,
        data,
    }
}

/// Color: gradients that shift with the frame number, the number drawn in white.
pub fn color_image(width: u32, height: u32, frame: u64, header: Header) -> Image {
    let (w, h) = (width as usize, height as usize);
    let shift = (frame * 4) as usize;
    // Red and blue are the same in every row and green changes every few rows: one row,
    // copied (see depth_image).
    let mut row: Vec<u8> = (0..w)
        .flat_map(|x| [((x + shift) * 255 / w.max(1)) as u8, 0, ((frame * 3) % 256) as u8])
        .collect();
    let mut data = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        let green = (y * 255 / h.max(1)) as u8;
        if row.get(1) != Some(&green) {
            row.iter_mut().skip(1).step_by(3).for_each(|g| *g = green);
        }
        data.extend_from_slice(&row);
    }
    draw_number(frame, w, h, |x, y| data[(y * w + x) * 3..][..3].copy_from_slice(&[255; 3]));
    Image { header, height, width, encoding: "rgb8".into(), is_bigendian: 0, step: width * 3, data }
}

/// A pinhole camera with a 70 degree horizontal field of view, no distortion.
pub fn camera_info(width: u32, height: u32, header: Header) -> CameraInfo {
    let (w, h) = (width as f64, height as f64);
    let f = w / (2.0 * (35f64).to_radians().tan());
    let (cx, cy) = (w / 2.0, h / 2.0);
    CameraInfo {
        header,
        height,
        width,
        distortion_model: "plumb_bob".into(),
        d: vec![0.0; 5],
        k: [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0],
        r: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        p: [f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0],
        binning_x: 0,
        binning_y: 0,
        roi: RegionOfInterest::default(),
    }
}

/// A slow rotation about z and gravity, as an IMU at rest on a turntable would report.
fn imu_message(n: u64, header: Header) -> Imu {
    let angle = n as f64 * 0.01;
    Imu {
        header,
        orientation: Quaternion { x: 0.0, y: 0.0, z: (angle / 2.0).sin(), w: (angle / 2.0).cos() },
        orientation_covariance: [0.0; 9],
        angular_velocity: Vector3 { x: 0.0, y: 0.0, z: 0.1 },
        angular_velocity_covariance: [0.0; 9],
        linear_acceleration: Vector3 { x: 0.0, y: 0.0, z: 9.81 },
        linear_acceleration_covariance: [0.0; 9],
    }
}

/// The synthetic robot drives a circle of this radius (m) ...
const CIRCLE_RADIUS: f64 = 2.0;
/// ... at this angular speed (rad/s): 0.5 m/s, one lap in about 25 s.
const CIRCLE_RATE: f64 = 0.25;

/// The robot's pose on its circle `t` seconds after the start, in the `odom` frame.
fn circle_pose(t: f64) -> Pose {
    let angle = t * CIRCLE_RATE;
    // Heading is tangent to the circle.
    let yaw = angle + std::f64::consts::FRAC_PI_2;
    Pose {
        position: Point { x: CIRCLE_RADIUS * angle.cos(), y: CIRCLE_RADIUS * angle.sin(), z: 0.0 },
        orientation: Quaternion { x: 0.0, y: 0.0, z: (yaw / 2.0).sin(), w: (yaw / 2.0).cos() },
    }
}

/// A robot's usual chain: `odom -> base_link` (moving), `base_link -> camera_link` and
/// `camera_link -> camera_depth_optical_frame` (fixed mounts, re-sent as a driver does).
fn tf_message(t: f64, stamp_ns: u64) -> TFMessage {
    let pose = circle_pose(t);
    let transform =
        |parent: &str, child: &str, translation: Vector3, rotation: Quaternion| TransformStamped {
            header: header(stamp_ns, parent),
            child_frame_id: child.into(),
            transform: Transform { translation, rotation },
        };
    let position = Vector3 { x: pose.position.x, y: pose.position.y, z: pose.position.z };
    TFMessage {
        transforms: vec![
            transform("odom", "base_link", position, pose.orientation),
            transform(
                "base_link",
                "camera_link",
                Vector3 { x: 0.2, y: 0.0, z: 0.3 },
                Quaternion::default(),
            ),
            // The optical frame: z forward, x right, y down (REP 103).
            transform(
                "camera_link",
                "camera_depth_optical_frame",
                Vector3::default(),
                Quaternion { x: -0.5, y: 0.5, z: -0.5, w: 0.5 },
            ),
        ],
    }
}

/// Odometry of the robot on its circle: pose in `odom`, velocity in `base_link`.
fn odometry(t: f64, stamp_ns: u64) -> Odometry {
    // A diagonal covariance, as a wheel odometry driver reports.
    let covariance =
        |variance: f64| std::array::from_fn(|i| if i % 7 == 0 { variance } else { 0.0 });
    Odometry {
        header: header(stamp_ns, "odom"),
        child_frame_id: "base_link".into(),
        pose: PoseWithCovariance { pose: circle_pose(t), covariance: covariance(0.01) },
        twist: TwistWithCovariance {
            twist: Twist {
                linear: Vector3 { x: CIRCLE_RADIUS * CIRCLE_RATE, y: 0.0, z: 0.0 },
                angular: Vector3 { x: 0.0, y: 0.0, z: CIRCLE_RATE },
            },
            covariance: covariance(0.001),
        },
    }
}

/// 5x7 digits, one row per byte, most significant of the low 5 bits leftmost.
const DIGITS: [[u8; 7]; 10] = [
    [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
    [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
    [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
    [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
    [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
    [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
    [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
    [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
    [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
    [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
];

/// Draws `n` in the top-left corner, scaled to about a tenth of the image height.
fn draw_number(n: u64, width: usize, height: usize, mut set: impl FnMut(usize, usize)) {
    let scale = (height / 70).max(1);
    for (position, digit) in n.to_string().bytes().enumerate() {
        let glyph = &DIGITS[(digit - b'0') as usize];
        let left = 4 + position * 6 * scale;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let (x, y) = (left + col * scale + dx, 4 + row * scale + dy);
                        if x < width && y < height {
                            set(x, y);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::RosMessage;

    fn config() -> SyntheticConfig {
        toml_config("name = \"cam\"\nwidth = 64\nheight = 48\n")
    }

    fn toml_config(text: &str) -> SyntheticConfig {
        config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("valid")
    }

    #[test]
    fn frames_are_deterministic_and_numbered() {
        let a = depth_image(64, 48, 7, Header::default());
        let b = depth_image(64, 48, 7, Header::default());
        assert_eq!(a, b);
        assert_ne!(a.data, depth_image(64, 48, 8, Header::default()).data);
        assert_eq!(a.data.len(), 64 * 48 * 2);
        // The digit's pixels are at 0.3 m.
        assert!(a.data.chunks(2).any(|px| u16::from_le_bytes([px[0], px[1]]) == 300));
        let color = color_image(64, 48, 7, Header::default());
        assert_eq!(color.data.len() as u32, color.step * color.height);
    }

    #[test]
    fn rejects_bad_values() {
        let mut c = config();
        c.fps = 0.0;
        assert_eq!(c.validate().unwrap_err().0, "fps");
        let mut c = config();
        c.namespace = "camera".into();
        assert_eq!(c.validate().unwrap_err().0, "namespace");
        let mut c = config();
        c.tf_hz = -1.0;
        assert_eq!(c.validate().unwrap_err().0, "tf_hz");
        let mut c = config();
        c.odom_hz = f64::NAN;
        assert_eq!(c.validate().unwrap_err().0, "odom_hz");
    }

    #[test]
    fn tf_and_odom_are_off_by_default_and_at_the_root() {
        let topics = |c: &SyntheticConfig| -> Vec<String> {
            SyntheticSource::new(c.clone()).topic_list().into_iter().map(|(t, _)| t).collect()
        };
        let c = config();
        assert!(!topics(&c).iter().any(|t| t == "/tf" || t == "/odom"));
        let c = toml_config("name = \"cam\"\ntf_hz = 100\nodom_hz = 50\n");
        let names = topics(&c);
        assert!(names.contains(&"/tf".to_string()) && names.contains(&"/odom".to_string()));
        let types: HashMap<_, _> = SyntheticSource::new(c).topic_list().into_iter().collect();
        assert_eq!(types["/tf"].name, "tf2_msgs/msg/TFMessage");
        assert_eq!(types["/odom"].name, "nav_msgs/msg/Odometry");
    }

    #[test]
    fn tf_chain_and_odometry_agree() {
        let tf = tf_message(10.0, 1_000_000_000);
        let children: Vec<&str> = tf.transforms.iter().map(|t| t.child_frame_id.as_str()).collect();
        assert_eq!(children, ["base_link", "camera_link", "camera_depth_optical_frame"]);
        let odom = odometry(10.0, 1_000_000_000);
        let moving = &tf.transforms[0].transform;
        assert_eq!(moving.translation.x, odom.pose.pose.position.x);
        assert_eq!(moving.rotation, odom.pose.pose.orientation);
        let r = odom.pose.pose.position.x.hypot(odom.pose.pose.position.y);
        assert!((r - CIRCLE_RADIUS).abs() < 1e-9);
        // Round trips through CDR, as the pipeline sends them.
        assert_eq!(TFMessage::from_cdr(&tf.to_cdr()).unwrap(), tf);
        assert_eq!(Odometry::from_cdr(&odom.to_cdr()).unwrap(), odom);
    }
}
