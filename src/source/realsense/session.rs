//! One session with a camera or recording: open it, stream until shutdown, its end or a
//! failure, on a blocking thread; [`super::RealsenseSource`] retries the failures worth it.

use super::clock::StreamState;
use super::config::{ColorFormat, ImageOutput, ImuOutput, Outputs, RealsenseConfig};
use super::convert::{camera_info, image, imu};
use super::ffi::{Origin, Pipeline, StreamRequest};
use crate::codec::MESSAGE_ENCODING;
use crate::codec::ros::Vector3;
use crate::source::{MessageType, Payload, Sample, SampleSender, Shutdown, encoded, header};
use realsense_rust::context::Context;
use realsense_rust::frame::{
    AccelFrame, ColorFrame, CompositeFrame, DepthFrame, FrameCategory, FrameEx, GyroFrame,
    ImageFrame,
};
use realsense_rust::kind::{Rs2CameraInfo, Rs2Format, Rs2StreamKind};
use realsense_rust::processing_blocks::align::Align;
use realsense_rust::processing_blocks::decimation::Decimation;
use realsense_rust::processing_blocks::options::DecimationOptions;
use realsense_rust::processing_blocks::spatial_filter::SpatialFilter;
use realsense_rust::processing_blocks::temporal_filter::TemporalFilter;
use realsense_sys as sys;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
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

/// Why a session ended before shutdown or the end of its recording.
#[derive(Debug)]
pub(super) enum Failure {
    /// Worth another try later (a camera that is missing or went silent).
    Retry(String),
    /// Will fail the same way again (a recording that cannot be played).
    Fatal(String),
}

/// What a session needs, shared with its blocking thread.
pub(super) struct Session {
    pub(super) source: Arc<str>,
    pub(super) types: HashMap<Arc<str>, Arc<MessageType>>,
    pub(super) outputs: Outputs,
    pub(super) config: RealsenseConfig,
    pub(super) file: Option<PathBuf>,
}

impl Session {
    /// A session with `config`'s camera, or with `file` (its recording, resolved).
    pub(super) fn new(config: RealsenseConfig, file: Option<PathBuf>) -> Session {
        Session {
            source: config.name.as_str().into(),
            types: config.outputs().topics().into_iter().collect(),
            outputs: config.outputs(),
            config,
            file,
        }
    }

    /// Opens the camera or recording and streams until shutdown, the end of the recording or
    /// a failure. Blocking. Images and IMU run as two librealsense pipelines on two threads:
    /// one pipeline's syncer would hand out the IMU only at the image rate.
    pub(super) fn stream(&self, out: &SampleSender, shutdown: &Shutdown) -> Result<(), Failure> {
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
    pub(super) fn fail(&self, message: String) -> Failure {
        match &self.file {
            Some(file) => Failure::Fatal(format!("recording {}: {message}", file.display())),
            None => Failure::Retry(message),
        }
    }

    /// Streams one pipeline until shutdown, the end of the recording, a failure, or `failed`
    /// (the other pipeline failed).
    pub(super) fn pump(
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
    pub(super) fn stream_requests(&self) -> (Vec<StreamRequest>, Vec<StreamRequest>) {
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
    pub(super) fn samples(
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
    pub(super) fn push_imu<F>(
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
    pub(super) fn push_image<K>(
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

    pub(super) fn sample(&self, topic: &Arc<str>, payload: Payload, stamp_ns: u64) -> Sample {
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

/// Align and depth filters, as configured.
pub(super) struct Processing {
    pub(super) align: Option<Align>,
    pub(super) decimation: Option<Decimation>,
    pub(super) spatial: Option<SpatialFilter>,
    pub(super) temporal: Option<TemporalFilter>,
}

impl Processing {
    pub(super) fn new(c: &RealsenseConfig) -> Result<Processing, String> {
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

    pub(super) fn align(&mut self, frames: CompositeFrame) -> Result<CompositeFrame, String> {
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

    pub(super) fn filter(&mut self, mut frame: DepthFrame) -> Result<DepthFrame, String> {
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
pub(super) fn select_camera(context: &Context, serial: Option<&str>) -> Result<String, String> {
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
pub(super) fn describe_request(c: &RealsenseConfig, camera_defaults: bool) -> String {
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
