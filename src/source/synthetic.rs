//! The `synthetic` source: a camera without hardware, publishing what the ROS 2 RealSense
//! driver publishes (16UC1 depth, rgb8 color, their CameraInfo) plus an IMU as telemetry.
//! Frames are deterministic functions of the frame number, which is also drawn into both
//! images, so a recording shows which frame is which.

use super::{
    MessageType, Payload, Sample, SampleSender, Shutdown, Source, SourceError, TopicInfo, encoded,
    header, now_ns,
};
use crate::codec::MESSAGE_ENCODING;
use crate::codec::ros::{CameraInfo, Header, Image, Imu, Quaternion, RegionOfInterest, Vector3};
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
    #[serde(default = "crate::config::default_true")]
    pub depth: bool,
    /// Publish color and its camera info.
    #[serde(default = "crate::config::default_true")]
    pub color: bool,
    /// IMU messages per second; 0 turns them off.
    #[serde(default = "default_imu_hz")]
    pub imu_hz: f64,
}

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
        if !(self.imu_hz.is_finite() && (0.0..=10_000.0).contains(&self.imu_hz)) {
            return bad("imu_hz", format!("{} is not in [0, 10000]", self.imu_hz));
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
        // Independent loops: drawing a frame must not delay the IMU.
        tokio::join!(
            camera_loop(config.clone(), types.clone(), out.clone(), shutdown.clone()),
            imu_loop(config, types, out, shutdown),
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
    types: HashMap<String, Arc<MessageType>>,
    out: SampleSender,
    mut shutdown: Shutdown,
) {
    if !c.depth && !c.color {
        return;
    }
    let types = Arc::new(types);
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / c.fps));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    for frame in 0u64.. {
        tokio::select! {
            _ = super::stopped(&mut shutdown) => return,
            _ = ticks.tick() => {}
        }
        let (c, types) = (c.clone(), types.clone());
        // Drawing is CPU work: keep it off the async workers.
        let drawn = tokio::task::spawn_blocking(move || {
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
        let Ok(samples) = drawn else { return };
        if !send_all(&out, samples).await {
            return;
        }
    }
}

async fn imu_loop(
    c: Arc<SyntheticConfig>,
    types: HashMap<String, Arc<MessageType>>,
    out: SampleSender,
    mut shutdown: Shutdown,
) {
    if c.imu_hz <= 0.0 {
        return;
    }
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / c.imu_hz));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    for n in 0u64.. {
        tokio::select! {
            _ = super::stopped(&mut shutdown) => return,
            _ = ticks.tick() => {}
        }
        let stamp_ns = now_ns();
        let message = imu_message(n, header(stamp_ns, "camera_imu_optical_frame"));
        let imu = sample(&c.name, &types, c.topic("imu"), encoded(&message), stamp_ns);
        if !send_all(&out, vec![imu]).await {
            return;
        }
    }
}

/// Depth in millimetres: a plane receding from 0.5 m to 4 m across the image with a wave
/// that travels one pixel per frame, and the frame number drawn at 0.3 m.
pub fn depth_image(width: u32, height: u32, frame: u64, header: Header) -> Image {
    let (w, h) = (width as usize, height as usize);
    let mut mm = vec![0u16; w * h];
    for y in 0..h {
        for x in 0..w {
            let base = 500 + (3500 * x / w.max(1)) as u32;
            let wave = ((x as u64 + frame) % 64) as u32 * 4;
            mm[y * w + x] = (base + wave + (y as u32 % 16)) as u16;
        }
    }
    draw_number(frame, w, h, |x, y| mm[y * w + x] = 300);
    let data = mm.iter().flat_map(|v| v.to_le_bytes()).collect();
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
    let mut data = vec![0u8; w * h * 3];
    let shift = (frame * 4) as usize;
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) * 3;
            data[i] = ((x + shift) * 255 / w.max(1)) as u8;
            data[i + 1] = (y * 255 / h.max(1)) as u8;
            data[i + 2] = ((frame * 3) % 256) as u8;
        }
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
    }
}
