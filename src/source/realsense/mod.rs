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

pub use config::{ColorFormat, RealsenseConfig};

use super::{SampleSender, Shutdown, Source, SourceError, TopicInfo};
use crate::codec::MESSAGE_ENCODING;
use session::{Failure, Session};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod clock;
mod config;
mod convert;
mod ffi;
mod session;

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
