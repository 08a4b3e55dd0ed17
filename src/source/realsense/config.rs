//! `[[sources]] type = "realsense"`: the config, its validation, and the topics and frame ids
//! it gives the streams.

use crate::codec::ros::{CameraInfo, Image, Imu};
use crate::source::MessageType;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

/// `[[sources]] type = "realsense"`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RealsenseConfig {
    /// Source name.
    pub name: String,
    /// Serial number of the camera; the first camera found when neither this nor `file` is set.
    pub serial: Option<String>,
    /// A RealSense recording (`.bag`, `.db3`) to play instead of a camera; relative to the
    /// config file's directory.
    pub file: Option<PathBuf>,
    /// Play `file` at its recorded pace; `false` plays it as fast as the router accepts.
    #[serde(default = "crate::util::default_true")]
    pub realtime: bool,
    /// Play `file` again from the start at its end, until shutdown.
    #[serde(default, rename = "loop")]
    pub looping: bool,
    /// Topic prefix (the driver's `/<namespace>/<camera_name>`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Prefix of the frame ids (`<prefix>_depth_optical_frame`, ...): the driver's camera name.
    #[serde(default = "default_frame_prefix")]
    pub frame_id_prefix: String,
    /// Publish depth and its camera info.
    #[serde(default = "crate::util::default_true")]
    pub depth: bool,
    /// Depth width; a camera's default is 848, a recording's is what it holds.
    pub depth_width: Option<u32>,
    /// Depth height; a camera's default is 480.
    pub depth_height: Option<u32>,
    /// Publish color and its camera info.
    #[serde(default = "crate::util::default_true")]
    pub color: bool,
    /// Color width; a camera's default is 1280.
    pub color_width: Option<u32>,
    /// Color height; a camera's default is 720.
    pub color_height: Option<u32>,
    /// Color pixel format.
    #[serde(default)]
    pub color_format: ColorFormat,
    /// Frames per second of depth and color; a camera's default is 30.
    pub fps: Option<u32>,
    /// Align depth to color (reprojected into the color camera, at its resolution).
    #[serde(default)]
    pub align_depth: bool,
    /// librealsense decimation filter magnitude (2..=8): depth at 1/n of the resolution.
    pub decimation: Option<u32>,
    /// librealsense edge-preserving spatial filter on depth.
    #[serde(default)]
    pub spatial_filter: bool,
    /// librealsense temporal filter on depth.
    #[serde(default)]
    pub temporal_filter: bool,
    /// Publish the gyro and accelerometer (a D435i/D455's IMU) at their default rates.
    #[serde(default)]
    pub imu: bool,
    /// Seconds between attempts to open a missing or failed camera.
    #[serde(default = "default_retry_s")]
    pub retry_interval_s: f64,
}

/// Color pixel format, as requested from librealsense and named in the Image's `encoding`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorFormat {
    /// Red, green, blue (the driver's default).
    #[default]
    Rgb8,
    /// Blue, green, red.
    Bgr8,
}

fn default_namespace() -> String {
    "/camera/camera".into()
}
fn default_frame_prefix() -> String {
    "camera".into()
}
fn default_retry_s() -> f64 {
    5.0
}

impl RealsenseConfig {
    /// Checks the values serde cannot, naming the key relative to this source's table.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, message: String| Err((key.to_string(), message));
        if self.serial.is_some() && self.file.is_some() {
            return bad("file", "give either `serial` (a camera) or `file` (a recording)".into());
        }
        if self.file.is_none() && (!self.realtime || self.looping) {
            let key = if self.looping { "loop" } else { "realtime" };
            return bad(key, "applies to a recording only (set `file`)".into());
        }
        for (key, value) in [
            ("depth_width", self.depth_width),
            ("depth_height", self.depth_height),
            ("color_width", self.color_width),
            ("color_height", self.color_height),
        ] {
            if value.is_some_and(|v| !(1..=8192).contains(&v)) {
                return bad(key, format!("{} is not in 1..=8192", value.unwrap_or_default()));
            }
        }
        if let Some(fps) = self.fps
            && !(1..=1000).contains(&fps)
        {
            return bad("fps", format!("{fps} is not in 1..=1000"));
        }
        if let Some(n) = self.decimation {
            if !(2..=8).contains(&n) {
                return bad("decimation", format!("{n} is not in 2..=8"));
            }
            if self.align_depth {
                return bad(
                    "decimation",
                    "cannot be combined with align_depth (aligned depth has the color resolution)"
                        .into(),
                );
            }
        }
        if self.align_depth && !(self.depth && self.color) {
            return bad("align_depth", "needs both depth and color".into());
        }
        if !(self.depth || self.color || self.imu) {
            return bad("depth", "depth, color and imu are all off: nothing to publish".into());
        }
        if let Err(why) = crate::duration::positive_seconds(self.retry_interval_s) {
            return bad("retry_interval_s", why);
        }
        if !self.namespace.starts_with('/') {
            return bad("namespace", format!("'{}' must start with '/'", self.namespace));
        }
        Ok(())
    }

    pub(super) fn topic(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.namespace.trim_end_matches('/'))
    }

    pub(super) fn frame_id(&self, stream: &str) -> String {
        format!("{}_{stream}_optical_frame", self.frame_id_prefix)
    }

    /// Where each published stream goes.
    pub(super) fn outputs(&self) -> Outputs {
        let image = |image: &str, info: &str, frame: &str| ImageOutput {
            image: self.topic(image).into(),
            info: self.topic(info).into(),
            frame_id: self.frame_id(frame),
        };
        let imu = |suffix: &str, frame: &str| ImuOutput {
            topic: self.topic(suffix).into(),
            frame_id: self.frame_id(frame),
        };
        Outputs {
            depth: self.depth.then(|| match self.align_depth {
                true => image(
                    "aligned_depth_to_color/image_raw",
                    "aligned_depth_to_color/camera_info",
                    "color",
                ),
                false => image("depth/image_rect_raw", "depth/camera_info", "depth"),
            }),
            color: self.color.then(|| image("color/image_raw", "color/camera_info", "color")),
            gyro: self.imu.then(|| imu("gyro/sample", "gyro")),
            accel: self.imu.then(|| imu("accel/sample", "accel")),
        }
    }
}

/// The topics and frame id of an image stream.
#[derive(Debug, Clone)]
pub(super) struct ImageOutput {
    pub(super) image: Arc<str>,
    pub(super) info: Arc<str>,
    pub(super) frame_id: String,
}

/// The topic and frame id of an IMU stream.
#[derive(Debug, Clone)]
pub(super) struct ImuOutput {
    pub(super) topic: Arc<str>,
    pub(super) frame_id: String,
}

/// What the source publishes; `None` for a stream that is off.
#[derive(Debug, Clone)]
pub(super) struct Outputs {
    pub(super) depth: Option<ImageOutput>,
    pub(super) color: Option<ImageOutput>,
    pub(super) gyro: Option<ImuOutput>,
    pub(super) accel: Option<ImuOutput>,
}

impl Outputs {
    pub(super) fn topics(&self) -> Vec<(Arc<str>, Arc<MessageType>)> {
        let mut topics = Vec::new();
        for image in [&self.depth, &self.color].into_iter().flatten() {
            topics.push((image.image.clone(), MessageType::of::<Image>()));
            topics.push((image.info.clone(), MessageType::of::<CameraInfo>()));
        }
        for imu in [&self.gyro, &self.accel].into_iter().flatten() {
            topics.push((imu.topic.clone(), MessageType::of::<Imu>()));
        }
        topics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> RealsenseConfig {
        ::config::Config::builder()
            .add_source(::config::File::from_str(text, ::config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("valid")
    }

    #[test]
    fn driver_topic_names_and_frame_ids() {
        let outputs = config("name = \"cam\"\nimu = true\n").outputs();
        let depth = outputs.depth.expect("depth");
        assert_eq!(&*depth.image, "/camera/camera/depth/image_rect_raw");
        assert_eq!(depth.frame_id, "camera_depth_optical_frame");
        assert_eq!(&*outputs.gyro.expect("gyro").topic, "/camera/camera/gyro/sample");
        let aligned = config("name = \"cam\"\nnamespace = \"/front\"\nalign_depth = true\n")
            .outputs()
            .depth
            .expect("depth");
        assert_eq!(&*aligned.info, "/front/aligned_depth_to_color/camera_info");
        assert_eq!(aligned.frame_id, "camera_color_optical_frame");
    }

    #[test]
    fn rejects_bad_values() {
        let key = |text: &str| config(text).validate().unwrap_err().0;
        assert_eq!(key("name = \"c\"\nserial = \"1\"\nfile = \"a.bag\"\n"), "file");
        assert_eq!(key("name = \"c\"\nrealtime = false\n"), "realtime");
        assert_eq!(key("name = \"c\"\ndecimation = 9\n"), "decimation");
        assert_eq!(key("name = \"c\"\ndecimation = 2\nalign_depth = true\n"), "decimation");
        assert_eq!(key("name = \"c\"\ncolor = false\nalign_depth = true\n"), "align_depth");
        assert_eq!(key("name = \"c\"\nfps = 0\n"), "fps");
        assert!(config("name = \"c\"\nfile = \"a.db3\"\nrealtime = false\n").validate().is_ok());
    }
}
