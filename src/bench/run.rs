//! `dtbridge bench run`: `dtbridge run` end to end through a LiveKit server.
//!
//! The bench joins the configured room as a subscriber, starts `dtbridge run -c CONFIG` (this
//! same executable) as a child process per configuration of the case (one robot's bridge, or
//! the same sources split over several bridges), subscribes to every track of their plans,
//! lets the stream settle, and then measures over a fixed window, per track: frames received,
//! their rate and size, and latency (receive time minus the frame's user timestamp, the sample
//! time in UNIX milliseconds, so the latency includes the source's own work after taking that
//! time); and the CPU time of the children, of this process and of the whole machine over the
//! window.

use super::{median, now_us};
use anyhow::{Context, Result, bail};
use dtbridge::config::{Connection, Role};
use dtbridge::daemon;
use dtbridge::livekit::{Credentials, DataTrackSubscribeOptions, Room, RoomEvent};
use dtbridge::util::percentile;
use futures::StreamExt;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio::process::Command;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long the stream runs before the measuring window opens.
const WARMUP: Duration = Duration::from_secs(3);
/// Linux reports process CPU times in ticks of 1/100 s (`USER_HZ`).
const USER_HZ: f64 = 100.0;

/// The `dtbridge run` processes measured together: one per configuration, all in the first
/// one's `[livekit] room` (each with an identity of its own). Written `a.toml+b.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunCase {
    /// The configurations, at least one.
    pub configs: Vec<PathBuf>,
}

impl FromStr for RunCase {
    type Err = String;

    fn from_str(text: &str) -> Result<RunCase, String> {
        let configs: Vec<PathBuf> = text.split('+').map(PathBuf::from).collect();
        if configs.iter().any(|c| c.as_os_str().is_empty()) {
            return Err(format!("'{text}': expected CONFIG or CONFIG+CONFIG+..."));
        }
        Ok(RunCase { configs })
    }
}

impl fmt::Display for RunCase {
    /// The configurations' file names, joined by " + ".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .configs
            .iter()
            .map(|c| c.file_name().unwrap_or(c.as_os_str()).to_string_lossy().into_owned())
            .collect();
        f.write_str(&names.join(" + "))
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunBench {
    /// The processes to measure.
    pub case: RunCase,
    /// Tracks to measure besides those the configurations' plans know before starting: a
    /// ROS 2 source's topics are found on the graph at run time.
    pub discovered_tracks: Vec<String>,
    /// The measuring window.
    pub window: Duration,
}

/// One track's measurement.
#[derive(Debug, Clone)]
pub struct TrackResult {
    /// Track name.
    pub track: String,
    /// Frames received in the window.
    pub frames: usize,
    /// Frames per second.
    pub fps: f64,
    /// Megabytes (10^6 bytes) per second.
    pub mb_per_s: f64,
    /// Mean frame size in kilobytes (10^3 bytes).
    pub mean_kb: f64,
    /// Median latency in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency in milliseconds.
    pub p99_ms: f64,
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The measuring window in seconds.
    pub seconds: f64,
    /// Per track, in plan order.
    pub tracks: Vec<TrackResult>,
    /// CPU time of the `dtbridge run` processes (and their camera drivers) over the window,
    /// in % of one core.
    pub publisher_cpu: f64,
    /// CPU time of this process (the subscriber), in % of one core.
    pub subscriber_cpu: f64,
    /// Busy time of the whole machine, in % of all cores.
    pub machine_busy: f64,
    /// Number of cores.
    pub cores: usize,
}

/// A received frame: when (since the bench started), its latency and size.
type Received = (Instant, f64, usize);

impl RunBench {
    /// Runs the children, measures, and stops them with SIGTERM.
    pub async fn run(&self) -> Result<RunReport> {
        let prepared = self
            .case
            .configs
            .iter()
            .map(|config| daemon::prepare(config))
            .collect::<Result<Vec<_>, _>>()?;
        let tracks: Vec<String> = prepared
            .iter()
            .flat_map(|p| p.plan.tracks.iter().map(|t| t.track.clone()))
            .chain(self.discovered_tracks.iter().cloned())
            .collect();
        // The bench's own participant subscribes to the robot's tracks.
        let Connection::Server(mut options) =
            prepared[0].loaded.config.livekit.connection(Role::Operator)?
        else {
            bail!("bench run needs a LiveKit server: set LIVEKIT_URL");
        };
        let Credentials::ApiKey { identity, room, .. } = &mut options.credentials else {
            bail!("bench run mints its own token: set LIVEKIT_API_KEY and LIVEKIT_API_SECRET");
        };
        *identity = "bench-subscriber".into();
        let room_name = room.clone();
        let (room, mut events) =
            Room::connect(options).await.context("the subscriber cannot join")?;

        let mut children = Vec::new();
        for config in &self.case.configs {
            let child = Command::new(std::env::current_exe()?)
                .arg("run")
                .arg("-c")
                .arg(config)
                .kill_on_drop(true)
                .spawn()
                .context("cannot start `dtbridge run`")?;
            let pid = child.id().context("the child exited at once")?;
            children.push((child, pid));
        }
        let pids: Vec<u32> = children.iter().map(|(_, pid)| *pid).collect();

        let (stop, stopped) = watch::channel(false);
        let mut collectors: Vec<Option<JoinHandle<Vec<Received>>>> =
            tracks.iter().map(|_| None).collect();
        let subscribed = tokio::time::timeout(Duration::from_secs(30), async {
            while collectors.iter().any(Option::is_none) {
                let event = tokio::select! {
                    event = events.recv() => event.context("the subscriber left the room")?,
                    (status, ..) = futures::future::select_all(
                        children.iter_mut().map(|(child, _)| Box::pin(child.wait()))
                    ) => bail!("`dtbridge run` exited: {}", status?),
                };
                let RoomEvent::TrackPublished(track) = event else { continue };
                let Some(i) = tracks.iter().position(|name| name == track.info().name()) else {
                    continue;
                };
                let options = DataTrackSubscribeOptions::default().with_buffer_size(64);
                let stream = track.subscribe_with_options(options).await?;
                collectors[i] = Some(tokio::spawn(collect(stream, stopped.clone())));
            }
            anyhow::Ok(())
        })
        .await;
        match subscribed {
            Ok(result) => result?,
            Err(_) => bail!(
                "the tracks of {} were not all published in room '{room_name}' within 30 s",
                self.case
            ),
        }

        tokio::time::sleep(WARMUP).await;
        let cpu_before = CpuTimes::now(&pids)?;
        let start = Instant::now();
        tokio::time::sleep(self.window).await;
        let cpu_after = CpuTimes::now(&pids)?;
        let end = Instant::now();
        for (child, _) in &mut children {
            if let Some(status) = child.try_wait()? {
                bail!("`dtbridge run` exited during the measurement: {status}");
            }
        }

        // The children first: their tracks go away while still subscribed.
        for (child, pid) in &mut children {
            stop_child(child, *pid).await;
        }
        stop.send_replace(true);
        let seconds = (end - start).as_secs_f64();
        let mut results = Vec::new();
        for (track, collector) in tracks.into_iter().zip(collectors) {
            let received = collector.context("a track was never subscribed")?.await?;
            results.push(summarize(track, &received, start, end));
        }
        room.leave().await;
        let machine_total = cpu_after.machine_total - cpu_before.machine_total;
        Ok(RunReport {
            seconds,
            tracks: results,
            publisher_cpu: (cpu_after.publisher - cpu_before.publisher) / seconds * 100.0,
            subscriber_cpu: (cpu_after.subscriber - cpu_before.subscriber) / seconds * 100.0,
            machine_busy: (cpu_after.machine_busy - cpu_before.machine_busy)
                / machine_total.max(1.0)
                * 100.0,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    }
}

/// Records every frame of a subscription until `stopped`.
async fn collect(
    mut stream: dtbridge::livekit::DataTrackStream,
    mut stopped: watch::Receiver<bool>,
) -> Vec<Received> {
    let mut received = Vec::new();
    loop {
        tokio::select! {
            frame = stream.next() => {
                let Some(frame) = frame else { break };
                let Some(stamp_ms) = frame.user_timestamp() else { continue };
                let latency = now_us() as f64 / 1e3 - stamp_ms as f64;
                received.push((Instant::now(), latency, frame.payload().len()));
            }
            _ = dtbridge::util::stopped(&mut stopped) => break,
        }
    }
    received
}

/// The frames received within `[start, end)`.
fn summarize(track: String, received: &[Received], start: Instant, end: Instant) -> TrackResult {
    let window: Vec<_> = received.iter().filter(|(at, ..)| *at >= start && *at < end).collect();
    let secs = (end - start).as_secs_f64();
    let bytes: usize = window.iter().map(|(.., len)| len).sum();
    let mut latencies: Vec<f64> = window.iter().map(|(_, latency, _)| *latency).collect();
    latencies.sort_by(f64::total_cmp);
    TrackResult {
        track,
        frames: window.len(),
        fps: window.len() as f64 / secs,
        mb_per_s: bytes as f64 / secs / 1e6,
        mean_kb: bytes as f64 / window.len().max(1) as f64 / 1e3,
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
    }
}

/// SIGTERM, so the child prints its summary; SIGKILL if it has not exited after 10 s.
async fn stop_child(child: &mut tokio::process::Child, pid: u32) {
    let terminated = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
    if terminated.is_err()
        || tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err()
    {
        _ = child.kill().await;
    }
}

/// CPU time counters at one moment.
struct CpuTimes {
    /// The children's user + system seconds, with their own children's (a RealSense source's
    /// camera driver).
    publisher: f64,
    /// This process's.
    subscriber: f64,
    /// Ticks all cores were busy, from `/proc/stat`.
    machine_busy: f64,
    /// Ticks all cores were busy or idle.
    machine_total: f64,
}

impl CpuTimes {
    fn now(children: &[u32]) -> Result<CpuTimes> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        let cpu = stat.lines().next().context("empty /proc/stat")?;
        let ticks: Vec<f64> =
            cpu.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal (guest time is already in user).
        let machine_total: f64 = ticks.iter().take(8).sum();
        let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
        Ok(CpuTimes {
            publisher: children
                .iter()
                .map(|pid| process_tree_cpu_seconds(*pid))
                .sum::<Result<f64>>()?,
            subscriber: process_cpu_seconds(std::process::id())?,
            machine_busy: machine_total - idle,
            machine_total,
        })
    }
}

/// User plus system CPU time of a process (all its threads), in seconds.
fn process_cpu_seconds(pid: u32) -> Result<f64> {
    Ok(ProcessStat::read(pid)?.cpu_seconds)
}

/// [`process_cpu_seconds`] of a process and of its running children.
fn process_tree_cpu_seconds(pid: u32) -> Result<f64> {
    let mut seconds = process_cpu_seconds(pid)?;
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Ok(other) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        // A process that ended since the directory was read is simply not counted.
        if let Ok(stat) = ProcessStat::read(other)
            && stat.parent == pid
        {
            seconds += stat.cpu_seconds;
        }
    }
    Ok(seconds)
}

/// What the benchmark reads of `/proc/PID/stat`.
struct ProcessStat {
    parent: u32,
    cpu_seconds: f64,
}

impl ProcessStat {
    fn read(pid: u32) -> Result<ProcessStat> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the parenthesized command name start at field 3 (state); the parent is
        // field 4, utime and stime are fields 14 and 15.
        let fields: Vec<&str> =
            stat.rsplit_once(')').context("malformed stat")?.1.split_whitespace().collect();
        let field = |i: usize| -> Result<u64> {
            Ok(fields.get(i - 3).context("short stat")?.parse::<u64>()?)
        };
        Ok(ProcessStat {
            parent: field(4)? as u32,
            cpu_seconds: (field(14)? + field(15)?) as f64 / USER_HZ,
        })
    }
}

impl RunReport {
    /// The report as a Markdown table, as pasted into BENCHMARKS.md.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "Window {:.1} s.\n\n\
             | track | frames | fps | MB/s | KB/frame | latency p50 ms | p99 ms |\n\
             |---|---|---|---|---|---|---|\n",
            self.seconds
        );
        for t in &self.tracks {
            out.push_str(&format!(
                "| {} | {} | {:.1} | {:.2} | {:.1} | {:.1} | {:.1} |\n",
                t.track, t.frames, t.fps, t.mb_per_s, t.mean_kb, t.p50_ms, t.p99_ms
            ));
        }
        out.push_str(&format!(
            "\nCPU over the window: `dtbridge run` (every process) {:.0}% of one core, the \
             subscriber {:.0}%, \
             the machine {:.0}% of {} cores busy.\n",
            self.publisher_cpu, self.subscriber_cpu, self.machine_busy, self.cores
        ));
        out
    }
}

/// Several cases measured alternately, `runs` times each: per track (matched by name) and per
/// case, the median over the runs and its range, as a Markdown table with a column per case.
pub fn compare_to_markdown(cases: &[RunCase], reports: &[Vec<RunReport>]) -> String {
    let cell = |values: Vec<f64>, decimals: usize| {
        let (lo, hi) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        match values.len() {
            0 => "-".to_string(),
            1 => format!("{:.*}", decimals, values[0]),
            _ => {
                format!("{:.*} ({:.*}–{:.*})", decimals, median(values), decimals, lo, decimals, hi)
            }
        }
    };
    let runs = reports.iter().map(Vec::len).max().unwrap_or(0);
    let names: Vec<String> = cases.iter().map(|c| format!("`{c}`")).collect();
    let mut out = format!(
        "Medians of {runs} runs (range), each a {:.0} s window.\n\n| track | metric | {} |\n|---|---|{}\n",
        reports.iter().flatten().map(|r| r.seconds).next().unwrap_or(0.0),
        names.join(" | "),
        "---|".repeat(cases.len())
    );
    let mut tracks: Vec<&str> = Vec::new();
    for report in reports.iter().flatten() {
        for track in &report.tracks {
            if !tracks.contains(&track.track.as_str()) {
                tracks.push(&track.track);
            }
        }
    }
    type Metric = (&'static str, usize, fn(&TrackResult) -> f64);
    let metrics: [Metric; 5] = [
        ("fps", 1, |t| t.fps),
        ("MB/s", 2, |t| t.mb_per_s),
        ("KB/frame", 1, |t| t.mean_kb),
        ("latency p50 ms", 1, |t| t.p50_ms),
        ("latency p99 ms", 1, |t| t.p99_ms),
    ];
    for track in tracks {
        for (metric, decimals, value) in metrics {
            let cells: Vec<String> = reports
                .iter()
                .map(|runs| {
                    let found =
                        runs.iter().filter_map(|r| r.tracks.iter().find(|t| t.track == track));
                    cell(found.map(value).collect(), decimals)
                })
                .collect();
            out.push_str(&format!("| {track} | {metric} | {} |\n", cells.join(" | ")));
        }
    }
    type Cpu = (&'static str, fn(&RunReport) -> f64);
    let cpu: [Cpu; 3] = [
        ("`dtbridge run` CPU (every process, camera drivers too), % of one core", |r| {
            r.publisher_cpu
        }),
        ("subscriber CPU, % of one core", |r| r.subscriber_cpu),
        ("machine busy, % of all cores", |r| r.machine_busy),
    ];
    for (metric, value) in cpu {
        let cells: Vec<String> =
            reports.iter().map(|runs| cell(runs.iter().map(value).collect(), 0)).collect();
        out.push_str(&format!("| all | {metric} | {} |\n", cells.join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarizes_the_window_only() {
        let start = Instant::now();
        let end = start + Duration::from_secs(2);
        let received: Vec<Received> =
            (0..30).map(|i| (start + Duration::from_millis(100 * i), i as f64, 1000)).collect();
        let t = summarize("t".into(), &received, start, end);
        assert_eq!(t.frames, 20);
        assert_eq!(t.fps, 10.0);
        assert_eq!(t.mb_per_s, 0.01);
        assert_eq!(t.mean_kb, 1.0);
        assert_eq!(t.p50_ms, 10.0);
        assert_eq!(t.p99_ms, 19.0);
    }

    #[test]
    fn compares_medians_per_track_and_config() {
        let report = |fps: f64| RunReport {
            seconds: 10.0,
            tracks: vec![TrackResult {
                track: "/d".into(),
                frames: 300,
                fps,
                mb_per_s: 1.0,
                mean_kb: 2.0,
                p50_ms: 3.0,
                p99_ms: 4.0,
            }],
            publisher_cpu: 50.0,
            subscriber_cpu: 5.0,
            machine_busy: 40.0,
            cores: 2,
        };
        let cases: Vec<RunCase> =
            ["config/a.toml", "b.toml+c/d.toml"].iter().map(|c| c.parse().unwrap()).collect();
        let reports = vec![vec![report(30.0), report(28.0), report(29.0)], vec![report(10.0)]];
        let table = compare_to_markdown(&cases, &reports);
        assert!(table.contains("| track | metric | `a.toml` | `b.toml + d.toml` |"), "{table}");
        assert!(table.contains("| /d | fps | 29.0 (28.0–30.0) | 10.0 |"), "{table}");
    }

    #[test]
    fn a_case_is_one_or_more_configurations() {
        let case: RunCase = "a.toml+dir/b.toml".parse().unwrap();
        assert_eq!(case.configs, [PathBuf::from("a.toml"), PathBuf::from("dir/b.toml")]);
        assert!("a.toml+".parse::<RunCase>().unwrap_err().contains("CONFIG+CONFIG"));
    }

    #[test]
    fn reads_cpu_times() {
        let times = CpuTimes::now(&[std::process::id()]).unwrap();
        assert!(times.publisher >= 0.0 && times.subscriber >= 0.0);
        assert!(times.machine_total > times.machine_busy && times.machine_busy > 0.0);
    }
}
