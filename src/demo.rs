//! `dtbridge demo`: the whole path in one process with nothing installed — the synthetic robot
//! publishes through the in-process loopback room, the recorder subscribes and writes
//! `demo.mcap` — then says what was recorded and how to look at it.

use dtbridge::config;
use dtbridge::daemon::{self, DaemonError, PublishReport};
use dtbridge::livekit::LoopbackHub;
use dtbridge::record::{self, RecordReport};
use std::path::Path;
use std::time::Duration;

/// The robot and operator configuration the demo runs: a RealSense-like camera (depth
/// 848x480 zstd, color 1280x720 JPEG, camera infos, IMU), recorded to one file.
pub const DEMO_CONFIG: &str = r#"
[livekit]
backend = "loopback"
room = "demo"
identity = "robot"

[[sources]]
type = "synthetic"
name = "camera"
namespace = "/camera/camera"
width = 848
height = 480
color_width = 1280
color_height = 720
fps = 15
imu_hz = 100

[[routes]]
topic = "/camera/camera/depth/image_rect_raw"
compression = "zstd"
zstd_level = 1

[[routes]]
topic = "/camera/camera/color/image_raw"
image_format = "jpeg"
jpeg_quality = 80

[[routes]]
topic = "/camera/camera/**"
"#;

/// How long the demo runs.
pub enum Until<'a> {
    /// This long.
    Elapsed(Duration),
    /// Until `stop`, serving a live view on `view` (`HOST:PORT`) meanwhile.
    Stopped {
        /// Where the live view listens.
        view: &'a str,
        /// Becomes true on Ctrl-C.
        stop: tokio::sync::watch::Receiver<bool>,
    },
}

/// Runs the demo and writes `output`.
pub async fn run(until: Until<'_>, output: &Path) -> Result<String, DaemonError> {
    let directory = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = output.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        DaemonError::Runtime(format!("'{}' is not a file name", output.display()))
    })?;
    let loaded = config::load_str(DEMO_CONFIG, &directory.join("demo.toml"))?;
    let prepared = daemon::prepare_loaded(loaded.clone())?;
    let mut recorder = record::recorder_config(&loaded)?;
    (recorder.room, recorder.identity) = ("demo".into(), "operator".into());
    recorder.output_dir = directory.to_path_buf();
    recorder.file_template = file_name.to_string();
    if output.exists() {
        // The demo's own previous output; the recorder itself never overwrites a file.
        std::fs::remove_file(output).map_err(|err| {
            DaemonError::Runtime(format!("cannot replace {}: {err}", output.display()))
        })?;
    }

    let hub = LoopbackHub::new("demo");
    let (operator, operator_events) = hub.join("operator").map_err(DaemonError::Connect)?;
    let (robot, robot_events) = hub.join("robot").map_err(DaemonError::Connect)?;
    let view = match &until {
        Until::Stopped { view, .. } => Some(record::start_view(&loaded, view).await?),
        Until::Elapsed(_) => None,
    };
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let recording = tokio::spawn(record::record(
        operator,
        operator_events,
        recorder,
        loaded.config.record.clone(),
        view,
        stop.clone(),
    ));
    let publishing = tokio::spawn(daemon::publish(prepared, robot, robot_events, stop));
    match until {
        Until::Elapsed(seconds) => tokio::time::sleep(seconds).await,
        Until::Stopped { mut stop, .. } => dtbridge::util::stopped(&mut stop).await,
    }
    stop_tx.send_replace(true);
    let joined = |err: tokio::task::JoinError| DaemonError::Runtime(err.to_string());
    let published = publishing.await.map_err(joined)??;
    let recorded = recording.await.map_err(joined)??;
    Ok(describe(output, &published, &recorded))
}

/// What the demo recorded, and how to open it.
fn describe(output: &Path, published: &PublishReport, recorded: &RecordReport) -> String {
    let mut out = format!("recorded {}:\n", output.display());
    let (mut raw, mut sent) = (0u64, 0u64);
    for (plan, stats) in &published.tracks {
        raw += stats.bytes_in;
        sent += stats.bytes_out;
        out.push_str(&format!(
            "  {:<40} {:<34} {:>5} frames {:>8.1} MB -> {:>6.1} MB\n",
            plan.track,
            plan.message_type.name,
            stats.frames,
            stats.bytes_in as f64 / 1e6,
            stats.bytes_out as f64 / 1e6
        ));
    }
    for file in &recorded.summary.files {
        out.push_str(&format!(
            "file {}: {} messages, {:.1} MB, {:?}\n",
            file.path.display(),
            file.messages,
            file.bytes as f64 / 1e6,
            file.status
        ));
    }
    for track in &recorded.summary.stats.tracks {
        out.push_str(&format!(
            "  recorded {:<40} {:>5} frames {:>8.1} MB\n",
            track.topic.as_deref().unwrap_or(&track.track),
            track.frames,
            track.bytes as f64 / 1e6
        ));
    }
    if sent > 0 {
        out.push_str(&format!(
            "compression: {:.1} MB of samples sent as {:.1} MB (x{:.1})\n",
            raw as f64 / 1e6,
            sent as f64 / 1e6,
            raw as f64 / sent as f64
        ));
    }
    if let Some((p50, p99)) = recorded.latency_ms {
        out.push_str(&format!(
            "latency from sample to recorder: p50 {p50:.1} ms, p99 {p99:.1} ms\n"
        ));
    }
    out.push_str(&format!(
        "open it in Foxglove: https://app.foxglove.dev -> Open local file -> {} \
         (Image panels for the depth and color topics, 3D for camera info)\n",
        output.display()
    ));
    out
}
