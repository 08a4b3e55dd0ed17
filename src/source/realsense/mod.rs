//! The `realsense` source (cargo feature `realsense`): an Intel RealSense camera, or a
//! RealSense recording played back like one, through librealsense2 (`realsense-rust`).
//!
//! It publishes what the ROS 2 RealSense driver publishes with its default names: depth as
//! `sensor_msgs/msg/Image` 16UC1 on `<namespace>/depth/image_rect_raw` (or
//! `<namespace>/aligned_depth_to_color/image_raw` when aligned to color), color as rgb8/bgr8 on
//! `<namespace>/color/image_raw`, a `sensor_msgs/msg/CameraInfo` per image from the stream's
//! intrinsics, and `sensor_msgs/msg/Imu` on `<namespace>/gyro/sample` and
//! `<namespace>/accel/sample`. Images leave as [`Payload::Image`], so routes pick zstd or
//! JPEG once per frame.
//!
//! librealsense calls block, so each session (open, then stream until the end, an error or
//! shutdown) runs on a blocking thread; between sessions the async side waits out the retry
//! interval. A camera that is missing or stops delivering is reported and tried again; a
//! recording that cannot be played ends this source with an error. The thread hands each
//! sample to the router, which never waits on the network, so it keeps up with the camera;
//! if it ever falls behind, librealsense's pipeline keeps only the newest set of frames
//! rather than piling them up. A recording played with `realtime = false` is read as fast as
//! the pipeline takes frames: every frame, as long as this thread keeps up.
//!
//! Header stamps are UNIX time. A camera stamping in librealsense's global time or system
//! time domain (D400 defaults to global time: the device clock converted to the host's) is
//! used as is; a hardware-clock stamp, and every stamp of a recording (it was taken in the
//! past), is rebased: the first frame gets the system time it arrived at, later frames that
//! plus their device-clock offset from it (the image and IMU pipelines share that first
//! origin), and a pipeline takes a new origin whenever its device clock goes backwards (a
//! looping recording starting over, a camera that reset).

use super::{
    MessageType, Payload, Sample, SampleSender, Shutdown, Source, SourceError, TopicInfo, encoded,
    header,
};
use crate::codec::MESSAGE_ENCODING;
use crate::codec::ros::{CameraInfo, Header, Image, Imu, RegionOfInterest, Vector3};
mod ffi;

use ffi::{Origin, Pipeline, StreamRequest};
use realsense_rust::context::Context;
use realsense_rust::frame::{
    AccelFrame, ColorFrame, CompositeFrame, DepthFrame, FrameCategory, FrameEx, GyroFrame,
    ImageFrame,
};
use realsense_rust::kind::{Rs2CameraInfo, Rs2Format, Rs2StreamKind, Rs2TimestampDomain};
use realsense_rust::processing_blocks::align::Align;
use realsense_rust::processing_blocks::decimation::Decimation;
use realsense_rust::processing_blocks::options::DecimationOptions;
use realsense_rust::processing_blocks::spatial_filter::SpatialFilter;
use realsense_rust::processing_blocks::temporal_filter::TemporalFilter;
use realsense_sys as sys;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How long one wait for frames may block before shutdown and the end of a recording are
/// looked at again; a looping recording starts over at most this late.
const WAIT_SLICE: Duration = Duration::from_millis(50);
/// A camera that delivers nothing for this long is taken as gone and opened again.
const CAMERA_SILENCE: Duration = Duration::from_secs(5);
/// Longest a processing block (align, filters) may take with one frame.
const PROCESSING_TIMEOUT: Duration = Duration::from_secs(1);

/// `[[sources]] type = "realsense"`.
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
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

    fn topic(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.namespace.trim_end_matches('/'))
    }

    fn frame_id(&self, stream: &str) -> String {
        format!("{}_{stream}_optical_frame", self.frame_id_prefix)
    }

    /// Where each published stream goes.
    fn outputs(&self) -> Outputs {
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
struct ImageOutput {
    image: Arc<str>,
    info: Arc<str>,
    frame_id: String,
}

/// The topic and frame id of an IMU stream.
#[derive(Debug, Clone)]
struct ImuOutput {
    topic: Arc<str>,
    frame_id: String,
}

/// What the source publishes; `None` for a stream that is off.
#[derive(Debug, Clone)]
struct Outputs {
    depth: Option<ImageOutput>,
    color: Option<ImageOutput>,
    gyro: Option<ImuOutput>,
    accel: Option<ImuOutput>,
}

impl Outputs {
    fn topics(&self) -> Vec<(Arc<str>, Arc<MessageType>)> {
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

/// A configured camera or recording.
pub struct RealsenseSource {
    config: RealsenseConfig,
    /// `config.file` resolved against the config file's directory.
    file: Option<PathBuf>,
}

impl RealsenseSource {
    /// A source from its (validated) config; a relative `file` is resolved against `base_dir`.
    /// Nothing is opened until [`Source::run`].
    pub fn new(config: RealsenseConfig, base_dir: &Path) -> Self {
        let file = config.file.as_ref().map(|file| base_dir.join(file));
        Self { config, file }
    }

    fn error(&self, message: String) -> SourceError {
        SourceError { source_name: self.config.name.clone(), message }
    }
}

#[async_trait::async_trait]
impl Source for RealsenseSource {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn topics(&self) -> Result<Vec<TopicInfo>, SourceError> {
        if let Some(file) = &self.file
            && !file.is_file()
        {
            return Err(self.error(format!("recording {}: no such file", file.display())));
        }
        Ok(self
            .config
            .outputs()
            .topics()
            .into_iter()
            .map(|(topic, message_type)| TopicInfo {
                topic: topic.to_string(),
                message_type,
                encoding: MESSAGE_ENCODING.into(),
            })
            .collect())
    }

    async fn run(
        self: Box<Self>,
        out: SampleSender,
        mut shutdown: Shutdown,
    ) -> Result<(), SourceError> {
        let session = Arc::new(Session {
            source: self.config.name.as_str().into(),
            types: self.config.outputs().topics().into_iter().collect(),
            outputs: self.config.outputs(),
            config: self.config.clone(),
            file: self.file.clone(),
        });
        let retry = Duration::from_secs_f64(self.config.retry_interval_s);
        loop {
            let (session, out, stop) = (session.clone(), out.clone(), shutdown.clone());
            let ended = tokio::task::spawn_blocking(move || session.stream(&out, &stop)).await;
            match ended {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(Failure::Fatal(message))) => return Err(self.error(message)),
                Ok(Err(Failure::Retry(message))) => tracing::error!(
                    "source '{}': {message}; trying again in {:.0} s",
                    self.config.name,
                    retry.as_secs_f64()
                ),
                Err(panic) => return Err(self.error(format!("the camera thread failed: {panic}"))),
            }
            tokio::select! {
                _ = crate::util::stopped(&mut shutdown) => return Ok(()),
                _ = tokio::time::sleep(retry) => {}
            }
        }
    }
}

/// Why a session ended before shutdown or the end of its recording.
#[derive(Debug)]
enum Failure {
    /// Worth another try later (a camera that is missing or went silent).
    Retry(String),
    /// Will fail the same way again (a recording that cannot be played).
    Fatal(String),
}

/// What a session needs, shared with its blocking thread.
struct Session {
    source: Arc<str>,
    types: HashMap<Arc<str>, Arc<MessageType>>,
    outputs: Outputs,
    config: RealsenseConfig,
    file: Option<PathBuf>,
}

impl Session {
    /// Opens the camera or recording and streams until shutdown, the end of the recording or
    /// a failure. Blocking. Images and IMU run as two librealsense pipelines on two threads:
    /// one pipeline's syncer would hand out the IMU only at the image rate.
    fn stream(&self, out: &SampleSender, shutdown: &Shutdown) -> Result<(), Failure> {
        let c = &self.config;
        let serial = match &self.file {
            Some(_) => None,
            None => {
                let context = Context::new()
                    .map_err(|err| Failure::Retry(format!("cannot start librealsense: {err}")))?;
                Some(select_camera(&context, c.serial.as_deref()).map_err(Failure::Retry)?)
            }
        };
        let origin = match (&self.file, &serial) {
            (Some(file), _) => Origin::Recording { file, realtime: c.realtime },
            (None, serial) => Origin::Camera { serial: serial.as_deref().unwrap_or_default() },
        };
        let (images, motion) = self.stream_requests();
        let first_stamp = OnceLock::new();
        let failed = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let pumps: Vec<_> = [images, motion]
                .into_iter()
                .filter(|streams| !streams.is_empty())
                .map(|streams| {
                    let (origin, first_stamp, failed) = (&origin, &first_stamp, &failed);
                    scope.spawn(move || {
                        let ended = self.pump(origin, &streams, out, shutdown, first_stamp, failed);
                        failed.fetch_or(ended.is_err(), Ordering::Relaxed);
                        ended
                    })
                })
                .collect();
            let ended: Vec<Result<(), Failure>> = pumps
                .into_iter()
                .map(|pump| {
                    pump.join()
                        .unwrap_or_else(|_| Err(self.fail("the camera thread failed".into())))
                })
                .collect();
            ended.into_iter().collect()
        })
    }

    /// A failure of this source's camera or recording.
    fn fail(&self, message: String) -> Failure {
        match &self.file {
            Some(file) => Failure::Fatal(format!("recording {}: {message}", file.display())),
            None => Failure::Retry(message),
        }
    }

    /// Streams one pipeline until shutdown, the end of the recording, a failure, or `failed`
    /// (the other pipeline failed).
    fn pump(
        &self,
        origin: &Origin,
        streams: &[StreamRequest],
        out: &SampleSender,
        shutdown: &Shutdown,
        first_stamp: &OnceLock<(f64, u64)>,
        failed: &AtomicBool,
    ) -> Result<(), Failure> {
        let fail = |message: String| self.fail(message);
        let start = || {
            Pipeline::start(origin, streams).map_err(|err| {
                fail(format!("{err} ({})", describe_request(&self.config, self.file.is_none())))
            })
        };
        let mut pipeline = start()?;
        let device = pipeline.device_name();
        let kinds: Vec<String> = streams.iter().map(|s| format!("{:?}", s.kind)).collect();
        tracing::info!("source '{}': streaming {} from {device}", self.source, kinds.join(", "));
        let mut processing = Processing::new(&self.config).map_err(fail)?;
        let mut state = StreamState {
            last_frame: HashMap::new(),
            origin: None,
            first_stamp,
            newest_device_ms: f64::NEG_INFINITY,
            last_stamp_ns: 0,
        };
        let mut silent_since = Instant::now();
        while !*shutdown.borrow() && !failed.load(Ordering::Relaxed) {
            let Some(frames) =
                pipeline.wait(WAIT_SLICE).map_err(|err| fail(format!("{device}: {err}")))?
            else {
                if pipeline.finished().map_err(fail)? {
                    if !self.config.looping {
                        tracing::info!("source '{}': end of the recording", self.source);
                        return Ok(());
                    }
                    drop(pipeline);
                    pipeline = start()?;
                    continue;
                }
                let silent = silent_since.elapsed();
                if self.file.is_none() && silent >= CAMERA_SILENCE {
                    return Err(fail(format!(
                        "no frames from {device} for {} s (unplugged?)",
                        silent.as_secs()
                    )));
                }
                continue;
            };
            silent_since = Instant::now();
            let samples = self.samples(frames, &mut processing, &mut state).map_err(fail)?;
            for sample in samples {
                if out.blocking_send(sample).is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The streams to enable: images (depth, color) and IMU (gyro, accel), either may be
    /// empty. A recording plays what it holds unless told otherwise; a camera gets the
    /// driver's defaults.
    fn stream_requests(&self) -> (Vec<StreamRequest>, Vec<StreamRequest>) {
        let c = &self.config;
        let camera = self.file.is_none();
        let or_default =
            |value: Option<u32>, default: u32| value.unwrap_or(if camera { default } else { 0 });
        let fps = or_default(c.fps, 30);
        let color_format = match c.color_format {
            ColorFormat::Rgb8 => Rs2Format::Rgb8,
            ColorFormat::Bgr8 => Rs2Format::Bgr8,
        };
        let mut images = Vec::new();
        if c.depth {
            let (width, height) = (or_default(c.depth_width, 848), or_default(c.depth_height, 480));
            let (kind, format) = (Rs2StreamKind::Depth, Rs2Format::Z16);
            images.push(StreamRequest { kind, width, height, format, fps });
        }
        if c.color {
            let (width, height) =
                (or_default(c.color_width, 1280), or_default(c.color_height, 720));
            let (kind, format) = (Rs2StreamKind::Color, color_format);
            images.push(StreamRequest { kind, width, height, format, fps });
        }
        let motion = match c.imu {
            true => [Rs2StreamKind::Gyro, Rs2StreamKind::Accel]
                .map(|kind| StreamRequest {
                    kind,
                    width: 0,
                    height: 0,
                    format: Rs2Format::MotionXyz32F,
                    fps: 0,
                })
                .into(),
            false => Vec::new(),
        };
        (images, motion)
    }

    /// The messages of one set of frames: new depth, color and IMU frames only (the
    /// pipeline's syncer hands out the newest frame of a stream again until the next one).
    fn samples(
        &self,
        frames: CompositeFrame,
        processing: &mut Processing,
        state: &mut StreamState,
    ) -> Result<Vec<Sample>, String> {
        let frames = processing.align(frames)?;
        let mut samples = Vec::new();
        if let Some(output) = &self.outputs.depth {
            for frame in frames.frames_of_type::<DepthFrame>() {
                if state.is_new(Rs2StreamKind::Depth, &frame) {
                    let frame = processing.filter(frame)?;
                    let stamp_ns = state.stamp_ns(&frame, self.file.is_some());
                    self.push_image(&mut samples, output, &frame, "16UC1", stamp_ns)?;
                }
            }
        }
        if let Some(output) = &self.outputs.color {
            for frame in frames.frames_of_type::<ColorFrame>() {
                if state.is_new(Rs2StreamKind::Color, &frame) {
                    let encoding = match frame.stream_profile().format() {
                        Rs2Format::Bgr8 => "bgr8",
                        _ => "rgb8",
                    };
                    let stamp_ns = state.stamp_ns(&frame, self.file.is_some());
                    self.push_image(&mut samples, output, &frame, encoding, stamp_ns)?;
                }
            }
        }
        if let Some(output) = &self.outputs.gyro {
            let velocity = |frame: &GyroFrame| *frame.rotational_velocity();
            self.push_imu(&mut samples, output, &frames, state, Rs2StreamKind::Gyro, velocity);
        }
        if let Some(output) = &self.outputs.accel {
            let acceleration = |frame: &AccelFrame| *frame.acceleration();
            self.push_imu(&mut samples, output, &frames, state, Rs2StreamKind::Accel, acceleration);
        }
        Ok(samples)
    }

    /// Pushes the new IMU samples of one kind in a set of frames.
    fn push_imu<F>(
        &self,
        samples: &mut Vec<Sample>,
        output: &ImuOutput,
        frames: &CompositeFrame,
        state: &mut StreamState,
        kind: Rs2StreamKind,
        value: impl Fn(&F) -> [f32; 3],
    ) where
        F: TryFrom<NonNull<sys::rs2_frame>> + FrameCategory + FrameEx,
    {
        for frame in frames.frames_of_type::<F>() {
            if state.is_new(kind, &frame) {
                let stamp_ns = state.stamp_ns(&frame, self.file.is_some());
                let [x, y, z] = value(&frame).map(f64::from);
                let header = header(stamp_ns, &output.frame_id);
                let imu = imu(header, Vector3 { x, y, z }, kind == Rs2StreamKind::Gyro);
                samples.push(self.sample(&output.topic, encoded(&imu), stamp_ns));
            }
        }
    }

    /// Pushes an image frame and its camera info.
    fn push_image<K>(
        &self,
        samples: &mut Vec<Sample>,
        output: &ImageOutput,
        frame: &ImageFrame<K>,
        encoding: &str,
        stamp_ns: u64,
    ) -> Result<(), String> {
        let header = header(stamp_ns, &output.frame_id);
        let intrinsics = frame.stream_profile().intrinsics().map_err(|err| err.to_string())?;
        let info = camera_info(&intrinsics.0, header.clone());
        let image = image(frame, encoding, header)?;
        samples.push(self.sample(&output.image, Payload::Image(Arc::new(image)), stamp_ns));
        samples.push(self.sample(&output.info, encoded(&info), stamp_ns));
        Ok(())
    }

    fn sample(&self, topic: &Arc<str>, payload: Payload, stamp_ns: u64) -> Sample {
        Sample {
            source: self.source.clone(),
            topic: topic.clone(),
            message_type: self.types[topic].clone(),
            encoding: MESSAGE_ENCODING.into(),
            payload,
            stamp_ns,
        }
    }
}

/// Per-pipeline bookkeeping of the frames seen.
struct StreamState<'a> {
    /// The last frame number published per stream.
    last_frame: HashMap<Rs2StreamKind, u64>,
    /// Device time (ms) and UNIX time (ns) that rebased stamps count from.
    origin: Option<(f64, u64)>,
    /// The first origin of the session, shared by its pipelines so their stamps agree.
    first_stamp: &'a OnceLock<(f64, u64)>,
    /// The newest device time seen (ms).
    newest_device_ms: f64,
    /// The stamp given last (UNIX ns).
    last_stamp_ns: u64,
}

impl StreamState<'_> {
    /// Whether `frame` was not published yet; remembers it.
    fn is_new(&mut self, kind: Rs2StreamKind, frame: &impl FrameEx) -> bool {
        self.last_frame.insert(kind, frame.frame_number()) != Some(frame.frame_number())
    }

    /// The frame's UNIX time stamp (see the module documentation).
    fn stamp_ns(&mut self, frame: &impl FrameEx, recording: bool) -> u64 {
        let device_ms = frame.timestamp();
        let host_clock = matches!(
            frame.timestamp_domain(),
            Rs2TimestampDomain::GlobalTime | Rs2TimestampDomain::SystemTime
        );
        if host_clock && !recording {
            return (device_ms * 1e6) as u64;
        }
        let origin = match self.origin {
            Some(origin) if device_ms >= self.newest_device_ms => origin,
            // Never before the previous stamp: playback may have run ahead of its timeline.
            Some(_) => (device_ms, crate::util::now_ns().max(self.last_stamp_ns + 1)),
            None => *self.first_stamp.get_or_init(|| (device_ms, crate::util::now_ns())),
        };
        self.origin = Some(origin);
        self.newest_device_ms = device_ms;
        let (origin_ms, origin_ns) = origin;
        self.last_stamp_ns =
            (origin_ns as i64 + ((device_ms - origin_ms) * 1e6) as i64).max(0) as u64;
        self.last_stamp_ns
    }
}

/// Align and depth filters, as configured.
struct Processing {
    align: Option<Align>,
    decimation: Option<Decimation>,
    spatial: Option<SpatialFilter>,
    temporal: Option<TemporalFilter>,
}

impl Processing {
    fn new(c: &RealsenseConfig) -> Result<Processing, String> {
        let text =
            |err: realsense_rust::processing_blocks::errors::ProcessingBlockConstructionError| {
                err.to_string()
            };
        let decimation = match c.decimation {
            Some(magnitude) => {
                let mut block = Decimation::new(1).map_err(text)?;
                let options = DecimationOptions { filter_magnitude: Some(magnitude as f32) };
                block.apply_options(&options).map_err(|err| err.to_string())?;
                Some(block)
            }
            None => None,
        };
        Ok(Processing {
            align: c
                .align_depth
                .then(|| Align::new(Rs2StreamKind::Color, 1))
                .transpose()
                .map_err(text)?,
            decimation,
            spatial: c.spatial_filter.then(|| SpatialFilter::new(1)).transpose().map_err(text)?,
            temporal: c
                .temporal_filter
                .then(|| TemporalFilter::new(1))
                .transpose()
                .map_err(text)?,
        })
    }

    fn align(&mut self, frames: CompositeFrame) -> Result<CompositeFrame, String> {
        let Some(align) = &mut self.align else { return Ok(frames) };
        // Align needs a depth and a color frame: an IMU-only set passes through.
        if frames.frames_of_type::<DepthFrame>().is_empty()
            || frames.frames_of_type::<ColorFrame>().is_empty()
        {
            return Ok(frames);
        }
        align.queue(frames).map_err(|err| format!("align: {err}"))?;
        align.wait(PROCESSING_TIMEOUT).map_err(|err| format!("align: {err}"))
    }

    fn filter(&mut self, mut frame: DepthFrame) -> Result<DepthFrame, String> {
        if let Some(block) = &mut self.decimation {
            block.queue(frame).map_err(|err| format!("decimation: {err}"))?;
            frame = block.wait(PROCESSING_TIMEOUT).map_err(|err| format!("decimation: {err}"))?;
        }
        if let Some(block) = &mut self.spatial {
            block.queue(frame).map_err(|err| format!("spatial filter: {err}"))?;
            frame =
                block.wait(PROCESSING_TIMEOUT).map_err(|err| format!("spatial filter: {err}"))?;
        }
        if let Some(block) = &mut self.temporal {
            block.queue(frame).map_err(|err| format!("temporal filter: {err}"))?;
            frame =
                block.wait(PROCESSING_TIMEOUT).map_err(|err| format!("temporal filter: {err}"))?;
        }
        Ok(frame)
    }
}

/// The serial number of the camera to open: `serial` if connected, else the first camera.
fn select_camera(context: &Context, serial: Option<&str>) -> Result<String, String> {
    let connected: Vec<String> = context
        .query_devices(HashSet::new())
        .iter()
        .filter_map(|device| device.info(Rs2CameraInfo::SerialNumber))
        .map(|serial| serial.to_string_lossy().into_owned())
        .collect();
    match serial {
        Some(wanted) if connected.iter().any(|s| s == wanted) => Ok(wanted.to_string()),
        Some(wanted) => Err(format!(
            "no RealSense camera with serial number '{wanted}' is connected (connected: {})",
            if connected.is_empty() { "none".into() } else { connected.join(", ") }
        )),
        None => connected
            .into_iter()
            .next()
            .ok_or_else(|| "no RealSense camera is connected".to_string()),
    }
}

/// The streams asked for, for an error message.
fn describe_request(c: &RealsenseConfig, camera_defaults: bool) -> String {
    let size = |w: Option<u32>, h: Option<u32>, default: &str| match (w, h) {
        (Some(w), Some(h)) => format!("{w}x{h}"),
        _ if camera_defaults => default.to_string(),
        _ => "any size".into(),
    };
    let fps =
        c.fps.map_or(if camera_defaults { "30 fps".into() } else { "any rate".into() }, |f| {
            format!("{f} fps")
        });
    let mut parts = Vec::new();
    if c.depth {
        parts.push(format!("depth Z16 {}", size(c.depth_width, c.depth_height, "848x480")));
    }
    if c.color {
        let format = match c.color_format {
            ColorFormat::Rgb8 => "RGB8",
            ColorFormat::Bgr8 => "BGR8",
        };
        parts.push(format!("color {format} {}", size(c.color_width, c.color_height, "1280x720")));
    }
    if c.imu {
        parts.push("gyro and accel".into());
    }
    format!("{} at {fps}", parts.join(", "))
}

/// The frame's pixels as a ROS Image, rows as librealsense lays them out.
fn image<K>(frame: &ImageFrame<K>, encoding: &str, header: Header) -> Result<Image, String> {
    let size = frame.get_data_size();
    let (width, height, stride) = (frame.width(), frame.height(), frame.stride());
    if size < stride * height {
        return Err(format!(
            "a {width}x{height} frame holds {size} bytes, not {}",
            stride * height
        ));
    }
    // SAFETY: librealsense keeps `size` bytes at the frame's data pointer while the frame lives.
    let data = unsafe {
        std::slice::from_raw_parts(frame.get_data() as *const _ as *const u8, stride * height)
    };
    Ok(Image {
        header,
        height: height as u32,
        width: width as u32,
        encoding: encoding.into(),
        is_bigendian: 0,
        step: stride as u32,
        data: data.to_vec(),
    })
}

/// A CameraInfo as the ROS 2 driver fills it from librealsense intrinsics: the distortion
/// mapped by [`distortion`], rectification identity, projection = K with no baseline.
fn camera_info(intrinsics: &sys::rs2_intrinsics, header: Header) -> CameraInfo {
    let (fx, fy) = (intrinsics.fx as f64, intrinsics.fy as f64);
    let (cx, cy) = (intrinsics.ppx as f64, intrinsics.ppy as f64);
    let (distortion_model, d) = distortion(intrinsics.model, intrinsics.coeffs);
    CameraInfo {
        header,
        height: intrinsics.height as u32,
        width: intrinsics.width as u32,
        distortion_model: distortion_model.into(),
        d,
        k: [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0],
        r: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        p: [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0],
        binning_x: 0,
        binning_y: 0,
        roi: RegionOfInterest::default(),
    }
}

/// A librealsense distortion model as a ROS one, with its coefficients: the Brown-Conrady
/// family (plain, modified, inverse) is `plumb_bob` [k1, k2, p1, p2, k3]; Kannala-Brandt4 is
/// `equidistant` [k1, k2, k3, k4]; none is `plumb_bob` with zeros. F-theta has no ROS
/// counterpart and keeps its name (`ftheta`, [k1]).
pub fn distortion(model: sys::rs2_distortion, coeffs: [f32; 5]) -> (&'static str, Vec<f64>) {
    let coeffs = coeffs.map(f64::from);
    match model {
        sys::rs2_distortion_RS2_DISTORTION_BROWN_CONRADY
        | sys::rs2_distortion_RS2_DISTORTION_MODIFIED_BROWN_CONRADY
        | sys::rs2_distortion_RS2_DISTORTION_INVERSE_BROWN_CONRADY => {
            ("plumb_bob", coeffs.to_vec())
        }
        sys::rs2_distortion_RS2_DISTORTION_KANNALA_BRANDT4 => ("equidistant", coeffs[..4].to_vec()),
        sys::rs2_distortion_RS2_DISTORTION_FTHETA => ("ftheta", coeffs[..1].to_vec()),
        _ => ("plumb_bob", vec![0.0; 5]),
    }
}

/// One IMU sample as the driver publishes gyro and accel separately: no orientation
/// (covariance[0] = -1, as sensor_msgs/Imu defines), the other vector zero.
fn imu(header: Header, value: Vector3, is_gyro: bool) -> Imu {
    let zero = Vector3 { x: 0.0, y: 0.0, z: 0.0 };
    let mut orientation_covariance = [0.0; 9];
    orientation_covariance[0] = -1.0;
    let (angular_velocity, linear_acceleration) =
        if is_gyro { (value, zero) } else { (zero, value) };
    Imu {
        header,
        orientation: Default::default(),
        orientation_covariance,
        angular_velocity,
        angular_velocity_covariance: [0.0; 9],
        linear_acceleration,
        linear_acceleration_covariance: [0.0; 9],
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
    fn maps_distortion_models_as_the_ros_driver() {
        let coeffs = [0.1, -0.2, 0.001, 0.002, 0.05];
        for model in [
            sys::rs2_distortion_RS2_DISTORTION_BROWN_CONRADY,
            sys::rs2_distortion_RS2_DISTORTION_MODIFIED_BROWN_CONRADY,
            sys::rs2_distortion_RS2_DISTORTION_INVERSE_BROWN_CONRADY,
        ] {
            let (name, d) = distortion(model, coeffs);
            assert_eq!((name, d.len()), ("plumb_bob", 5));
            assert_eq!(d[1], -0.2f32 as f64);
        }
        let (name, d) = distortion(sys::rs2_distortion_RS2_DISTORTION_KANNALA_BRANDT4, coeffs);
        assert_eq!((name, d.len()), ("equidistant", 4));
        let (name, d) = distortion(sys::rs2_distortion_RS2_DISTORTION_NONE, coeffs);
        assert_eq!((name, d), ("plumb_bob", vec![0.0; 5]));
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
