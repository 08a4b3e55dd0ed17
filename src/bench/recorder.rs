//! `dtbridge bench recorder`: how fast the recorder turns incoming frames into an MCAP file
//! with zstd chunks, on one core, and how long a frame waits from arrival to write.
//!
//! The frames are what a RealSense-like robot sends: 848x480 16UC1 depth images as `cdr+zstd`
//! (decompressed by the recorder, as it does for every `+zstd` track) and 1280x720 JPEG
//! `CompressedImage`s, alternating. The anchor, measured in the same run on the same frames,
//! is writing the stored bytes to a file with `std::fs::File` (no MCAP, no compression), so
//! the ratio says what MCAP + zstd chunking costs on this machine's disk.

use super::median;
use anyhow::Result;
use dtbridge::codec::RosMessage;
use dtbridge::codec::compress::ZstdCompressor;
use dtbridge::codec::image::encode_jpeg;
use dtbridge::codec::ros::Header;
use dtbridge::recorder::{Recorder, RecorderConfig, TrackMeta};
use dtbridge::source::synthetic::{color_image, depth_image};
use dtbridge::util::percentile;
use std::io::Write;
use std::time::Instant;

/// One run's numbers.
#[derive(Debug, Clone)]
pub struct RecorderReport {
    /// Frames written per run.
    pub frames: usize,
    /// MB (10^6 bytes) per second of frames as stored (depth decompressed), through the
    /// recorder, median of runs.
    pub recorder_mb_s: f64,
    /// Arrival-to-written latency per frame, p50 and p99 in ms, over all runs.
    pub write_p50_ms: f64,
    /// See [`Self::write_p50_ms`].
    pub write_p99_ms: f64,
    /// MB/s of the anchor (plain file writes of the stored bytes), median of runs.
    pub anchor_mb_s: f64,
    /// Size of the recorded file over the bytes that arrived.
    pub file_ratio: f64,
}

/// Runs the benchmark `runs` times with `frames` frames each, in a temporary directory.
pub fn run(frames: usize, runs: usize) -> Result<RecorderReport> {
    let mut zstd = ZstdCompressor::new(1)?;
    let mut depth = Vec::new();
    let mut color = Vec::new();
    // A few distinct frames, reused: drawing is not what is measured.
    for n in 0..8u64 {
        let image = depth_image(848, 480, n, Header::default());
        depth.push(zstd.compress(&image.try_to_cdr()?)?);
        let jpeg = encode_jpeg(&color_image(1280, 720, n, Header::default()), 80)?;
        color.push(jpeg.try_to_cdr()?);
    }
    let stored: Vec<usize> = (0..frames)
        .map(|i| if i % 2 == 0 { 814_152 } else { color[i / 2 % color.len()].len() })
        .collect();
    let dir = std::env::temp_dir().join(format!("dtbridge-bench-recorder-{}", std::process::id()));
    let (mut recorder_rates, mut anchor_rates, mut latencies) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut file_ratio = 0.0;
    for run in 0..runs {
        let out = dir.join(format!("run{run}"));
        let mut config = RecorderConfig::new(&out, "bench", "operator");
        config.file_template = "bench".into();
        let mut recorder = Recorder::open(config)?;
        let depth_track =
            recorder.add_track(track::<dtbridge::codec::ros::Image>("/depth", "cdr+zstd"));
        let color_track =
            recorder.add_track(track::<dtbridge::codec::ros::CompressedImage>("/color", "cdr"));
        let mut frame_bytes = 0u64;
        let started = Instant::now();
        for i in 0..frames {
            let (id, payload) = if i % 2 == 0 {
                (depth_track, &depth[i / 2 % depth.len()])
            } else {
                (color_track, &color[i / 2 % color.len()])
            };
            let arrived = Instant::now();
            recorder.write(id, payload, i as u64, Some(i as u64 * 1_000_000))?;
            recorder.tick()?;
            latencies.push(arrived.elapsed().as_secs_f64() * 1e3);
            frame_bytes += stored[i] as u64;
        }
        let summary = recorder.finish()?;
        recorder_rates.push(frame_bytes as f64 / started.elapsed().as_secs_f64() / 1e6);
        let file_bytes: u64 = summary.files.iter().map(|f| f.bytes).sum();
        file_ratio = file_bytes as f64 / frame_bytes as f64;

        let anchor_path = out.join("anchor.bin");
        let started = Instant::now();
        let mut file = std::fs::File::create(&anchor_path)?;
        let block = vec![0u8; 814_152];
        let mut written = 0u64;
        for len in &stored {
            file.write_all(&block[..*len.min(&block.len())])?;
            written += *len as u64;
        }
        file.sync_data()?;
        anchor_rates.push(written as f64 / started.elapsed().as_secs_f64() / 1e6);
    }
    _ = std::fs::remove_dir_all(&dir);
    latencies.sort_by(f64::total_cmp);
    Ok(RecorderReport {
        frames,
        recorder_mb_s: median(recorder_rates),
        write_p50_ms: percentile(&latencies, 0.5),
        write_p99_ms: percentile(&latencies, 0.99),
        anchor_mb_s: median(anchor_rates),
        file_ratio,
    })
}

fn track<M: RosMessage>(name: &str, frame_encoding: &str) -> TrackMeta {
    TrackMeta {
        publisher: "robot".into(),
        track: name.into(),
        schema_name: Some(M::TYPE_NAME.into()),
        schema_encoding: Some(dtbridge::codec::SCHEMA_ENCODING.into()),
        schema_text: Some(M::DEFINITION.into()),
        frame_encoding: Some(frame_encoding.into()),
    }
}

impl RecorderReport {
    /// A Markdown table for BENCHMARKS.md.
    pub fn to_markdown(&self) -> String {
        format!(
            "| what | MB/s of frames as stored | write latency p50 / p99 | file / frames |\n\
             |---|---|---|---|\n\
             | recorder: MCAP, zstd chunks, depth decompressed | {:.0} | {:.2} / {:.2} ms | {:.3} |\n\
             | anchor: the stored bytes to a plain file | {:.0} | | |\n\
             \nrecorder / anchor: {:.2}; {} frames per run (depth cdr+zstd and JPEG, alternating)\n",
            self.recorder_mb_s,
            self.write_p50_ms,
            self.write_p99_ms,
            self.file_ratio,
            self.anchor_mb_s,
            self.recorder_mb_s / self.anchor_mb_s,
            self.frames
        )
    }
}
