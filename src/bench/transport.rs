//! `dtbridge bench transport`: throughput, loss and latency of data tracks through a LiveKit
//! server, for this crate's publisher and, side by side in the same run, the official Python
//! SDK's publisher; both received by this crate's subscriber.
//!
//! Every bench frame starts with the send time (UNIX microseconds) and a sequence number, both
//! little-endian u64, the layout `tests/peers/lk_peer.py bench-publish` uses; the subscriber
//! runs on the same machine, so latency is its receive time minus that send time.

use super::now_us;
use anyhow::{Context, Result, bail};
use dtbridge::livekit::{
    ConnectOptions, Credentials, DataTrackSubscribeOptions, Grants, PushError, Room, RoomEvent,
    RoomEvents, TrackOptions,
};
use dtbridge::util::percentile;
use futures::StreamExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// One measured configuration: a frame size at an offered rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Case {
    /// Frame size in bytes (at least 16).
    pub size: usize,
    /// Offered frames per second.
    pub rate: f64,
}

impl std::str::FromStr for Case {
    type Err = String;

    /// Parses `SIZE@RATE`, e.g. `65536@200`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (size, rate) = s.split_once('@').ok_or(format!("'{s}' is not SIZE@RATE"))?;
        let size: usize = size.parse().map_err(|_| format!("bad frame size in '{s}'"))?;
        let rate: f64 = rate.parse().map_err(|_| format!("bad rate in '{s}'"))?;
        // A rate is a number of frames in a second: up to a million, never NaN or infinite.
        if size < 16 || !(rate.is_finite() && rate > 0.0 && rate <= 1e6) {
            return Err(format!("'{s}': size must be >= 16 bytes and rate from 0 to 1e6 per s"));
        }
        Ok(Case { size, rate })
    }
}

/// The cases of the issue: 1 KB, 64 KB, 256 KB and 1 MB frames at fixed offered rates.
pub const DEFAULT_CASES: [Case; 4] = [
    Case { size: 1024, rate: 1000.0 },
    Case { size: 64 * 1024, rate: 200.0 },
    Case { size: 256 * 1024, rate: 60.0 },
    Case { size: 1024 * 1024, rate: 30.0 },
];

/// What to run against.
#[derive(Debug, Clone)]
pub struct TransportBench {
    /// Server URL.
    pub url: String,
    /// API key and secret to mint tokens.
    pub api_key: String,
    /// API secret.
    pub api_secret: String,
    /// Cases to measure.
    pub cases: Vec<Case>,
    /// How long each case offers frames.
    pub duration: Duration,
    /// Python with the official `livekit` SDK, for the side-by-side column (skipped if `None`).
    pub python: Option<PathBuf>,
    /// The Python peer script.
    pub peer_script: PathBuf,
    /// Offered load for the overload check: far more than the network carries.
    pub flood: Case,
}

/// Results of one case for one publisher.
#[derive(Debug, Clone, Default)]
pub struct Measurement {
    /// Frames refused at the publisher (queue full) or dropped by its transport.
    pub dropped_at_publisher: u64,
    /// Frames the subscriber received.
    pub received: u64,
    /// Received frames per second over the offering period.
    pub fps: f64,
    /// Received megabytes (10^6 bytes) per second.
    pub mb_per_s: f64,
    /// Share of offered frames that never arrived.
    pub loss: f64,
    /// Median end-to-end latency.
    pub p50_ms: f64,
    /// 99th percentile end-to-end latency.
    pub p99_ms: f64,
}

/// Memory behaviour when the producer outruns the network.
#[derive(Debug, Clone)]
pub struct FloodResult {
    /// The offered load.
    pub case: Case,
    /// The measurement (most frames are expected to be dropped).
    pub measurement: Measurement,
    /// Resident set size before and after, and the peak, in MB.
    pub rss_before_mb: f64,
    /// RSS after the flood.
    pub rss_after_mb: f64,
    /// Peak RSS of the process.
    pub rss_peak_mb: f64,
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct Report {
    /// Per case: this crate's publisher, and the Python SDK's when it ran.
    pub rows: Vec<(Case, Measurement, Option<Measurement>)>,
    /// The overload check.
    pub flood: FloodResult,
}

impl TransportBench {
    fn options(&self, room: &str, identity: &str) -> ConnectOptions {
        ConnectOptions::new(
            self.url.clone(),
            Credentials::ApiKey {
                key: self.api_key.clone(),
                secret: self.api_secret.clone(),
                room: room.into(),
                identity: identity.into(),
                grants: Grants::default(),
            },
        )
    }

    /// Runs every case, then the overload check.
    pub async fn run(&self) -> Result<Report> {
        let room = format!("bench-{}", std::process::id());
        let (subscriber, mut events) = Room::connect(self.options(&room, "bench-subscriber"))
            .await
            .context("the bench subscriber cannot join")?;
        let (publisher, _publisher_events) = Room::connect(self.options(&room, "bench-rust"))
            .await
            .context("the bench publisher cannot join")?;

        let mut rows = Vec::new();
        for (n, case) in self.cases.iter().enumerate() {
            let name = format!("bench/rust/{n}");
            let rust = self.measure_rust(&publisher, &mut events, &name, *case).await?;
            eprintln!("  rust   {} B @ {} Hz: {}", case.size, case.rate, summary(&rust));
            let python = match &self.python {
                Some(python) => {
                    let name = format!("bench/python/{n}");
                    let m = self.measure_python(python, &room, &mut events, &name, *case).await?;
                    eprintln!("  python {} B @ {} Hz: {}", case.size, case.rate, summary(&m));
                    Some(m)
                }
                None => None,
            };
            rows.push((*case, rust, python));
        }

        let rss_before_mb = rss_mb("VmRSS");
        let measurement =
            self.measure_rust(&publisher, &mut events, "bench/rust/flood", self.flood).await?;
        let flood = FloodResult {
            case: self.flood,
            measurement,
            rss_before_mb,
            rss_after_mb: rss_mb("VmRSS"),
            rss_peak_mb: rss_mb("VmHWM"),
        };
        publisher.leave().await;
        subscriber.leave().await;
        Ok(Report { rows, flood })
    }

    async fn measure_rust(
        &self,
        publisher: &Room,
        events: &mut RoomEvents,
        name: &str,
        case: Case,
    ) -> Result<Measurement> {
        let track = publisher.publish_track(TrackOptions::new(name)).await?;
        let stats_before = publisher.transport_stats();
        let collector = Collector::start(events, name).await?;
        let offered = (case.rate * self.duration.as_secs_f64()).round() as u64;
        let start = tokio::time::Instant::now();
        let mut refused = 0;
        let tail = vec![0u8; case.size - 16];
        for seq in 0..offered {
            tokio::time::sleep_until(start + Duration::from_secs_f64(seq as f64 / case.rate)).await;
            let mut frame = Vec::with_capacity(case.size);
            frame.extend_from_slice(&now_us().to_le_bytes());
            frame.extend_from_slice(&seq.to_le_bytes());
            frame.extend_from_slice(&tail);
            match track.try_push(frame, None) {
                Ok(()) => {}
                Err(PushError::QueueFull) => refused += 1,
                Err(err) => bail!("push failed: {err}"),
            }
        }
        let mut m = collector.finish(offered, self.duration, DRAIN).await;
        let dropped = publisher.transport_stats().frames_dropped - stats_before.frames_dropped;
        m.dropped_at_publisher = refused + dropped;
        track.unpublish();
        Ok(m)
    }

    async fn measure_python(
        &self,
        python: &PathBuf,
        room: &str,
        events: &mut RoomEvents,
        name: &str,
        case: Case,
    ) -> Result<Measurement> {
        let mut peer = PythonPeer::spawn(
            Command::new(python)
                .arg(&self.peer_script)
                .args(["--url", &self.url, "--api-key", &self.api_key])
                .args(["--api-secret", &self.api_secret, "--room", room])
                .args(["--identity", "bench-python", "bench-publish", "--track", name])
                .args(["--size", &case.size.to_string(), "--rate", &case.rate.to_string()])
                .args(["--duration", &self.duration.as_secs_f64().to_string()]),
        )
        .await?;
        let collector = Collector::start(events, name).await?;
        peer.line("start").await?;
        let offered = (case.rate * self.duration.as_secs_f64()).round() as u64;
        let m = collector.finish(offered, self.duration, self.duration + DRAIN).await;
        let done = peer.wait_event("done").await?;
        let dropped = done.get("dropped").and_then(serde_json::Value::as_u64).unwrap_or(0);
        peer.line("quit").await?;
        Ok(Measurement { dropped_at_publisher: dropped, ..m })
    }
}

/// How long frames may still arrive after the publisher's last one.
const DRAIN: Duration = Duration::from_secs(2);

/// Receives a bench track's frames in the background.
struct Collector {
    task: tokio::task::JoinHandle<(Vec<f64>, u64)>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl Collector {
    /// Waits for the track, subscribes, and starts counting.
    async fn start(events: &mut RoomEvents, name: &str) -> Result<Collector> {
        let track = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(event) = events.recv().await {
                if let RoomEvent::TrackPublished(track) = event
                    && track.info().name() == name
                {
                    return Some(track);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .with_context(|| format!("track '{name}' was not published within 20 s"))?;
        let options = DataTrackSubscribeOptions::default().with_buffer_size(1024);
        let mut stream = track.subscribe_with_options(options).await?;
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut bytes = 0u64;
            loop {
                tokio::select! {
                    frame = stream.next() => {
                        let Some(frame) = frame else { break };
                        let payload = frame.payload();
                        let Some(sent) = payload.get(..8) else { continue };
                        let sent = u64::from_le_bytes(sent.try_into().expect("8 bytes"));
                        latencies.push(now_us().saturating_sub(sent) as f64 / 1000.0);
                        bytes += payload.len() as u64;
                    }
                    _ = &mut stopped => break,
                }
            }
            (latencies, bytes)
        });
        Ok(Collector { task, stop })
    }

    /// Counts for `wait` more, then computes the measurement over the offering `duration`.
    async fn finish(self, offered: u64, duration: Duration, wait: Duration) -> Measurement {
        tokio::time::sleep(wait).await;
        _ = self.stop.send(());
        let (mut latencies, bytes) = self.task.await.unwrap_or_default();
        latencies.sort_by(f64::total_cmp);
        let received = latencies.len() as u64;
        let secs = duration.as_secs_f64();
        Measurement {
            dropped_at_publisher: 0,
            received,
            fps: received as f64 / secs,
            mb_per_s: bytes as f64 / secs / 1e6,
            loss: 1.0 - received as f64 / offered.max(1) as f64,
            p50_ms: percentile(&latencies, 0.50),
            p99_ms: percentile(&latencies, 0.99),
        }
    }
}

/// The Python SDK peer process, spoken to through stdin/stdout JSON lines.
struct PythonPeer {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl PythonPeer {
    /// Starts the peer and waits until its track is published.
    async fn spawn(command: &mut Command) -> Result<PythonPeer> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the Python peer")?;
        let stdout = BufReader::new(child.stdout.take().context("no stdout")?).lines();
        let mut peer = PythonPeer { child, stdout };
        peer.wait_event("published").await?;
        Ok(peer)
    }

    async fn line(&mut self, text: &str) -> Result<()> {
        let stdin = self.child.stdin.as_mut().context("no stdin")?;
        stdin.write_all(format!("{text}\n").as_bytes()).await?;
        Ok(stdin.flush().await?)
    }

    /// Reads lines until `{"event": <event>}` (bounded: 60 s).
    async fn wait_event(&mut self, event: &str) -> Result<serde_json::Value> {
        tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = self.stdout.next_line().await? {
                let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                match value.get("event").and_then(|e| e.as_str()) {
                    Some(e) if e == event => return Ok(value),
                    Some("error") => bail!("the Python peer failed: {line}"),
                    _ => {}
                }
            }
            bail!("the Python peer exited before '{event}'")
        })
        .await
        .with_context(|| format!("the Python peer did not report '{event}' within 60 s"))?
    }
}

/// Reads a `/proc/self/status` field in MB (0 where unavailable).
fn rss_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn summary(m: &Measurement) -> String {
    format!(
        "{:.0} fps, {:.2} MB/s, loss {:.1}%, p50 {:.2} ms, p99 {:.2} ms",
        m.fps,
        m.mb_per_s,
        m.loss * 100.0,
        m.p50_ms,
        m.p99_ms
    )
}

impl Report {
    /// The report as a Markdown table, as pasted into BENCHMARKS.md.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from(
            "| frame | offered | publisher | recv fps | MB/s | loss | p50 ms | p99 ms | dropped at publisher |\n\
             |---|---|---|---|---|---|---|---|---|\n",
        );
        let mut row = |case: &Case, who: &str, m: &Measurement| {
            out.push_str(&format!(
                "| {} | {} fps ({:.1} MB/s) | {who} | {:.0} | {:.2} | {:.1}% | {:.2} | {:.2} | {} |\n",
                human_size(case.size),
                case.rate,
                case.size as f64 * case.rate / 1e6,
                m.fps,
                m.mb_per_s,
                m.loss * 100.0,
                m.p50_ms,
                m.p99_ms,
                m.dropped_at_publisher
            ));
        };
        for (case, rust, python) in &self.rows {
            row(case, "dtbridge (Rust)", rust);
            if let Some(python) = python {
                row(case, "Python SDK", python);
            }
        }
        let f = &self.flood;
        out.push_str(&format!(
            "\nOverload: {} frames offered at {} fps ({:.0} MB/s): {} received, {} dropped at the \
             publisher; RSS {:.0} MB before, {:.0} MB after, peak {:.0} MB.\n",
            human_size(f.case.size),
            f.case.rate,
            f.case.size as f64 * f.case.rate / 1e6,
            f.measurement.received,
            f.measurement.dropped_at_publisher,
            f.rss_before_mb,
            f.rss_after_mb,
            f.rss_peak_mb
        ));
        out
    }
}

fn human_size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KB", b >> 10),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cases() {
        assert_eq!("65536@200".parse::<Case>(), Ok(Case { size: 65536, rate: 200.0 }));
        assert!("8@10".parse::<Case>().is_err());
        assert!("1024@0".parse::<Case>().is_err());
        assert!("1024".parse::<Case>().is_err());
    }
}
