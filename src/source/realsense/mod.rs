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
//!
//! The camera side runs in a process of its own, `dtbridge-realsense` (installed next to
//! `dtbridge`; `DTBRIDGE_REALSENSE_DRIVER` names another path), one process per session, which
//! sends the samples over a pipe ([`protocol`]). Two reasons. librealsense as the pyrealsense2
//! wheel builds it exports its own copy of Fast DDS, which clashes with ROS 2's in one process
//! (a binary that loads both crashes before `main`): `dtbridge` never links librealsense, the
//! driver never links ROS 2, so one bridge runs ROS 2 and RealSense sources side by side. And
//! librealsense hangs or crashes on USB resets and firmware hiccups in the field: a driver
//! that crashes, or sends nothing for [`DRIVER_SILENCE`], is reported, killed, and started
//! again after `retry_interval_s`, while the bridge's other sources go on untouched. The
//! run's summary counts these restarts per source.

pub use config::{ColorFormat, RealsenseConfig};

use super::{MessageType, Sample, SampleSender, Shutdown, Source, SourceError, TopicInfo};
use crate::codec::MESSAGE_ENCODING;
use protocol::{DriverMessage, DriverRequest};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, Command};

mod clock;
mod config;
mod convert;
pub mod driver;
mod ffi;
pub mod protocol;
mod session;

/// Names the camera driver's executable where it is not next to `dtbridge`.
pub const DRIVER_ENV: &str = "DTBRIDGE_REALSENSE_DRIVER";
/// The camera driver's executable name.
const DRIVER_NAME: &str = "dtbridge-realsense";

/// A configured camera or recording.
pub struct RealsenseSource {
    config: RealsenseConfig,
    /// `config.file` resolved against the config file's directory.
    file: Option<PathBuf>,
    /// The camera driver's executable.
    driver: PathBuf,
    /// Sessions started again after a failure.
    restarts: Arc<AtomicU64>,
}

impl RealsenseSource {
    /// A source from its (validated) config; a relative `file` is resolved against `base_dir`.
    /// Nothing is opened until [`Source::run`]. Its driver is `DTBRIDGE_REALSENSE_DRIVER`, else
    /// `dtbridge-realsense` next to the running executable.
    pub fn new(config: RealsenseConfig, base_dir: &Path) -> Self {
        let file = config.file.as_ref().map(|file| base_dir.join(file));
        let driver = std::env::var_os(DRIVER_ENV).map(PathBuf::from).unwrap_or_else(|| {
            let exe = std::env::current_exe().unwrap_or_default();
            exe.with_file_name(DRIVER_NAME)
        });
        Self { config, file, driver, restarts: Arc::default() }
    }

    /// The same source with its driver at `path`.
    pub fn with_driver(self, path: impl Into<PathBuf>) -> Self {
        Self { driver: path.into(), ..self }
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

    fn restarts(&self) -> Option<Arc<AtomicU64>> {
        Some(self.restarts.clone())
    }

    async fn run(
        self: Box<Self>,
        out: SampleSender,
        mut shutdown: Shutdown,
    ) -> Result<(), SourceError> {
        let topics = self.config.outputs().topics();
        let source: Arc<str> = self.config.name.as_str().into();
        let retry = Duration::from_secs_f64(self.config.retry_interval_s);
        loop {
            match self.session(&source, &topics, &out, &mut shutdown).await {
                SessionEnd::Done => return Ok(()),
                SessionEnd::Fatal(message) => return Err(self.error(message)),
                SessionEnd::Retry(message) => tracing::error!(
                    "source '{}': {message}; trying again in {:.0} s",
                    self.config.name,
                    retry.as_secs_f64()
                ),
            }
            tokio::select! {
                _ = crate::util::stopped(&mut shutdown) => return Ok(()),
                _ = tokio::time::sleep(retry) => {}
            }
            self.restarts.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// How long the driver may send nothing before it is taken as hung and killed: longer than a
/// camera may stay silent before the driver itself reports it gone
/// (`CAMERA_SILENCE`, 5 s), and than opening a camera takes.
const DRIVER_SILENCE: Duration = Duration::from_secs(10);
/// How long a stopping driver may take to close its camera before it is killed.
const DRIVER_STOP: Duration = Duration::from_secs(3);

/// How one session with the driver ended.
enum SessionEnd {
    /// Shutdown, the pipeline gone, or the end of the recording.
    Done,
    /// Worth another try after the retry interval.
    Retry(String),
    /// Will fail the same way again.
    Fatal(String),
}

impl RealsenseSource {
    /// Runs one driver process until it ends, fails, hangs or `shutdown`, forwarding its samples
    /// as samples of `source` (the source's name, shared by every sample).
    async fn session(
        &self,
        source: &Arc<str>,
        topics: &[(Arc<str>, Arc<MessageType>)],
        out: &SampleSender,
        shutdown: &mut Shutdown,
    ) -> SessionEnd {
        let request = DriverRequest { config: self.config.clone(), file: self.file.clone() };
        let mut request = serde_json::to_vec(&request).expect("a configuration serializes");
        request.push(b'\n');
        let spawned = Command::new(&self.driver)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(err) => {
                return SessionEnd::Fatal(format!(
                    "cannot start the camera driver {}: {err} (it is installed next to dtbridge; \
                     {DRIVER_ENV} names another path)",
                    self.driver.display()
                ));
            }
        };
        let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return SessionEnd::Fatal("the camera driver has no stdin or stdout".into());
        };
        if let Err(err) = stdin.write_all(&request).await {
            return SessionEnd::Retry(format!("the camera driver did not take its request: {err}"));
        }
        loop {
            let next = tokio::select! {
                _ = crate::util::stopped(shutdown) => {
                    stop_driver(child, stdin).await;
                    return SessionEnd::Done;
                }
                next = tokio::time::timeout(DRIVER_SILENCE, DriverMessage::read_from(&mut stdout)) => next,
            };
            let message = match next {
                Ok(Ok(Some(message))) => message,
                Ok(Ok(None)) => {
                    let status = match child.wait().await {
                        Ok(status) => status.to_string(),
                        Err(err) => err.to_string(),
                    };
                    return SessionEnd::Retry(format!("the camera driver stopped ({status})"));
                }
                Ok(Err(err)) => {
                    _ = child.kill().await;
                    return SessionEnd::Retry(format!("the camera driver sent {err}; stopped it"));
                }
                Err(_) => {
                    _ = child.kill().await;
                    return SessionEnd::Retry(format!(
                        "the camera driver sent nothing for {} s (hung?); killed it",
                        DRIVER_SILENCE.as_secs()
                    ));
                }
            };
            match message {
                DriverMessage::Sample { topic, stamp_ns, payload } => {
                    let Some((topic, message_type)) = topics.get(usize::from(topic)) else {
                        _ = child.kill().await;
                        return SessionEnd::Retry(format!(
                            "the camera driver sent topic {topic} of {}",
                            topics.len()
                        ));
                    };
                    let sample = Sample {
                        source: source.clone(),
                        topic: topic.clone(),
                        message_type: message_type.clone(),
                        encoding: MESSAGE_ENCODING.into(),
                        payload,
                        stamp_ns,
                    };
                    if out.send(sample).await.is_err() {
                        stop_driver(child, stdin).await;
                        return SessionEnd::Done;
                    }
                }
                DriverMessage::Ended => {
                    stop_driver(child, stdin).await;
                    return SessionEnd::Done;
                }
                DriverMessage::Failed { fatal, message } => {
                    stop_driver(child, stdin).await;
                    return if fatal {
                        SessionEnd::Fatal(message)
                    } else {
                        SessionEnd::Retry(message)
                    };
                }
            }
        }
    }
}

/// Closes the driver's stdin, its signal to stop, and waits for it to exit; kills it if it
/// takes longer than [`DRIVER_STOP`].
async fn stop_driver(mut child: Child, stdin: ChildStdin) {
    drop(stdin);
    if tokio::time::timeout(DRIVER_STOP, child.wait()).await.is_err() {
        tracing::warn!("the camera driver did not stop within {DRIVER_STOP:?}; killed it");
        _ = child.kill().await;
    }
}
