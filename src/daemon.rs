//! `dtbridge run` and `dtbridge check`: load the configuration, resolve the routing plan, and
//! (for `run`) connect, publish, and keep going until told to stop.

use crate::config::{self, Connection, Loaded, Role};
use crate::livekit::{LoopbackHub, Room, RoomError, RoomEvent, RoomEvents};
use crate::pipeline::{Pipeline, Plan, Router, TrackStats};
use crate::scheduler::{LinkReport, Scheduler, SchedulerOptions};
use crate::source::{self, Source, TopicInfo};
use crate::text::printable;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Why the daemon stopped early; each kind has its own exit status.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The room could not be joined.
    #[error(transparent)]
    Connect(RoomError),
    /// Something failed while running.
    #[error("{0}")]
    Runtime(String),
}

/// A checked configuration: its sources (those that could be opened) and the plan.
pub struct Prepared {
    /// The file.
    pub loaded: Loaded,
    /// The compiled routes.
    pub router: Router,
    /// Sources that are ready to run.
    pub sources: Vec<Box<dyn Source>>,
    /// Sources that failed to open, with the error.
    pub failed: Vec<String>,
    /// The routing of every known topic.
    pub plan: Plan,
}

/// Loads and checks a configuration. A source that cannot be opened (a missing replay file)
/// is reported in [`Prepared::failed`] and left out; everything else invalid is an error.
pub fn prepare(path: &Path) -> Result<Prepared, DaemonError> {
    prepare_loaded(config::load(path)?)
}

/// [`prepare`] for a configuration already loaded.
pub fn prepare_loaded(loaded: Loaded) -> Result<Prepared, DaemonError> {
    if let Err(why) = loaded.config.livekit.connect_timeout() {
        return Err(loaded.error("livekit.connect_timeout_s", why).into());
    }
    if let Some(mbps) = loaded.config.livekit.max_bandwidth_mbps
        && !(mbps.is_finite() && mbps > 0.0)
    {
        return Err(loaded
            .error("livekit.max_bandwidth_mbps", format!("{mbps}: must be greater than 0"))
            .into());
    }
    let router = Router::new(&loaded)?;
    let policy = std::sync::Arc::new(router.clone());
    let built = source::build(&loaded.config.sources, policy, loaded.base_dir())
        .map_err(|(key, message)| loaded.error(key, message))?;
    let mut sources = Vec::new();
    let mut failed = Vec::new();
    let mut topics: Vec<(String, TopicInfo)> = Vec::new();
    for source in built {
        match source.topics() {
            Ok(list) => {
                topics.extend(list.into_iter().map(|topic| (source.name().to_string(), topic)));
                sources.push(source);
            }
            Err(err) => failed.push(err.to_string()),
        }
    }
    let plan = Plan::resolve(&loaded, &router, &topics)?;
    Ok(Prepared { loaded, router, sources, failed, plan })
}

/// Joins the configured room.
pub async fn connect(connection: Connection) -> Result<(Room, RoomEvents), RoomError> {
    match connection {
        Connection::Server(options) => Room::connect(options).await,
        Connection::Loopback { room, identity, e2ee } => {
            LoopbackHub::new(room).join_with(&identity, true, e2ee)
        }
    }
}

/// How often the stats line is printed.
const STATS_INTERVAL: Duration = Duration::from_secs(5);

/// The connection losses of a session and how long each took to resume or reconnect, logged
/// as they happen and listed in the summary.
#[derive(Debug, Default)]
pub struct Outages {
    lost_at: Option<Instant>,
    /// How long each resumed session was away, in order.
    pub resumed_after: Vec<Duration>,
    /// How long each reconnect took, in order; an outage still going on is not listed.
    pub reconnected_after: Vec<Duration>,
}

impl Outages {
    /// Logs a lost signal connection, the session being resumed (starts the outage's clock).
    pub fn resuming(&mut self, reason: &str) {
        self.lost_at.get_or_insert_with(Instant::now);
        tracing::warn!("signal connection lost ({reason}); resuming the session");
    }

    /// Logs the session resumed, with how long it was away.
    pub fn resumed(&mut self) {
        let took = self.lost_at.take().map(|at| at.elapsed()).unwrap_or_default();
        self.resumed_after.push(took);
        tracing::info!(
            "session resumed after {:.1} s; tracks and subscriptions kept",
            took.as_secs_f64()
        );
    }

    /// Logs a lost connection (only the first of an outage starts its clock).
    pub fn lost(&mut self, reason: &str) {
        self.lost_at.get_or_insert_with(Instant::now);
        tracing::warn!("connection lost ({reason}); reconnecting");
    }

    /// Logs the room back, with how long it was away; `what` says what is working again.
    pub fn reconnected(&mut self, what: &str) {
        let took = self.lost_at.take().map(|at| at.elapsed()).unwrap_or_default();
        self.reconnected_after.push(took);
        tracing::info!("reconnected after {:.1} s; {what}", took.as_secs_f64());
    }

    /// The outages so far, for a summary.
    pub fn report(&self) -> OutageReport {
        let seconds = |list: &[Duration]| list.iter().map(Duration::as_secs_f64).collect();
        OutageReport {
            resumed_after_s: seconds(&self.resumed_after),
            reconnected_after_s: seconds(&self.reconnected_after),
            still_reconnecting_s: self.lost_at.map(|at| at.elapsed().as_secs_f64()),
        }
    }
}

/// The connection's outages, as a summary reports them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OutageReport {
    /// How long each resumed session was away, in seconds, in order.
    pub resumed_after_s: Vec<f64>,
    /// How long each reconnect took, in seconds, in order.
    pub reconnected_after_s: Vec<f64>,
    /// How long the outage still going on at the end has lasted, in seconds.
    pub still_reconnecting_s: Option<f64>,
}

impl OutageReport {
    /// One line for a summary, or `None` when the connection never dropped.
    pub fn line(&self) -> Option<String> {
        let ongoing = self.still_reconnecting_s;
        let ended = self.resumed_after_s.len() + self.reconnected_after_s.len();
        if ended == 0 && ongoing.is_none() {
            return None;
        }
        let mut line =
            format!("connection lost {} time(s)", ended + usize::from(ongoing.is_some()));
        let seconds = |list: &[f64]| -> String {
            list.iter().map(|s| format!("{s:.1} s")).collect::<Vec<_>>().join(", ")
        };
        if !self.resumed_after_s.is_empty() {
            line.push_str(&format!(", resumed after {}", seconds(&self.resumed_after_s)));
        }
        if !self.reconnected_after_s.is_empty() {
            line.push_str(&format!(", reconnected after {}", seconds(&self.reconnected_after_s)));
        }
        if let Some(ongoing) = ongoing {
            line.push_str(&format!(", still reconnecting after {ongoing:.1} s"));
        }
        Some(line)
    }
}

/// What a publishing session did, per track.
#[derive(Debug, Clone)]
pub struct PublishReport {
    /// Each track's plan and final counters.
    pub tracks: Vec<(crate::pipeline::TrackPlan, TrackStats)>,
    /// The closing summary.
    pub summary: RunSummary,
}

/// What `dtbridge run` did, as its closing summary says it; `run --summary-json FILE` writes
/// it as JSON (docs/config.md, "Summaries").
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// How long it ran, in seconds.
    pub elapsed_s: f64,
    /// Per track, in plan order.
    pub tracks: Vec<TrackSummary>,
    /// Samples on topics without a route.
    pub unrouted: u64,
    /// What reached the network: frames accepted while a connection was dying can be lost on
    /// the way, and this is where that shows.
    pub network: NetworkSummary,
    pub outages: OutageReport,
    /// The sources that start their device again after a failure (RealSense cameras).
    pub sources: Vec<SourceSummary>,
}

/// How often a source started its device again after a failure.
#[derive(Debug, Clone, Serialize)]
pub struct SourceSummary {
    pub source: String,
    /// Sessions started again: after a crash or hang of its driver, or a camera gone.
    pub restarts: u64,
}

/// One track's line of a [`RunSummary`].
#[derive(Debug, Clone, Serialize)]
pub struct TrackSummary {
    pub track: String,
    pub source: String,
    pub topic: String,
    /// Frames dropped for any reason: `replaced + shed + stale + refused`.
    pub dropped: u64,
    #[serde(flatten)]
    pub stats: TrackStats,
}

/// Frames the transport sent, and those it dropped before sending.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct NetworkSummary {
    pub frames_sent: u64,
    pub frames_dropped: u64,
    /// Packets sent that SCTP gave up on (see [`crate::livekit::TransportStats`]).
    pub packets_abandoned: u64,
}

impl RunSummary {
    /// The summary as `dtbridge run` prints it.
    pub fn text(&self) -> String {
        let mut out = format!("summary after {:.1} s:\n", self.elapsed_s);
        for track in &self.tracks {
            let s = &track.stats;
            let ratio = if s.bytes_out > 0 { s.bytes_in as f64 / s.bytes_out as f64 } else { 0.0 };
            out.push_str(&format!(
                "  {} <- {}: {} frames ({} lost on the network), {:.1} MB in, {:.1} MB out (x{:.2}), dropped {} (replaced {}, shed {}, stale {}, refused {}), decimated {}\n",
                track.track,
                track.topic,
                s.frames,
                s.lost,
                s.bytes_in as f64 / 1e6,
                s.bytes_out as f64 / 1e6,
                ratio,
                track.dropped,
                s.replaced,
                s.shed,
                s.stale,
                s.refused,
                s.decimated
            ));
        }
        out.push_str(&format!("  samples on topics without a route: {}", self.unrouted));
        out.push_str(&format!(
            "\n  network: {} frames sent, {} dropped before sending, {} packets given up on (not acknowledged within their lifetime: lost, but for a few whose acknowledgement was; a frame up to 64 KB is one packet)",
            self.network.frames_sent, self.network.frames_dropped, self.network.packets_abandoned
        ));
        if let Some(line) = self.outages.line() {
            out.push_str(&format!("\n  {line}"));
        }
        for source in self.sources.iter().filter(|source| source.restarts > 0) {
            out.push_str(&format!(
                "\n  source '{}': started again {} times after a failure",
                source.source, source.restarts
            ));
        }
        out
    }
}

/// Logs the room and identity joined, as the server reports them (escaped: they come from
/// the server, or from a token).
pub fn log_joined(room: &Room) {
    tracing::info!("joined room '{}' as '{}'", printable(room.name()), printable(room.identity()));
}

/// Joins the configured room and publishes until `stop` becomes true.
pub async fn run(
    prepared: Prepared,
    stop: watch::Receiver<bool>,
) -> Result<PublishReport, DaemonError> {
    let connection =
        prepared.loaded.config.livekit.connection(Role::Robot).map_err(DaemonError::Connect)?;
    let (room, events) = connect(connection).await.map_err(DaemonError::Connect)?;
    log_joined(&room);
    publish(prepared, room, events, stop).await
}

/// Publishes the prepared sources in `room` until `stop` becomes true, printing a stats line
/// every few seconds and a summary at the end; then leaves the room.
pub async fn publish(
    prepared: Prepared,
    room: Room,
    mut events: RoomEvents,
    mut stop: watch::Receiver<bool>,
) -> Result<PublishReport, DaemonError> {
    let Prepared { loaded, router, sources, failed, plan } = prepared;
    for error in &failed {
        tracing::error!("{error}; the other sources keep running");
    }

    let options = SchedulerOptions {
        max_bytes_per_second: loaded.config.livekit.max_bandwidth_mbps.map(|mbps| mbps * 1e6 / 8.0),
    };
    let scheduler = Scheduler::start(&room, options);
    let (pipeline, inlet) = Pipeline::start(room.clone(), scheduler.clone(), router, &plan).await;
    let restarts: Vec<(String, Arc<AtomicU64>)> = sources
        .iter()
        .filter_map(|source| Some((source.name().to_string(), source.restarts()?)))
        .collect();
    let (stop_sources, sources_stopped) = watch::channel(false);
    let source_tasks: Vec<_> = sources
        .into_iter()
        .map(|source| {
            let (inlet, stopped) = (inlet.clone(), sources_stopped.clone());
            tokio::spawn(async move {
                if let Err(err) = source.run(inlet, stopped).await {
                    tracing::error!("{err}; the other sources keep running");
                }
            })
        })
        .collect();
    drop(inlet);

    let started = Instant::now();
    let mut ticker = tokio::time::interval(STATS_INTERVAL);
    ticker.tick().await;
    let mut previous: Vec<TrackStats> = Vec::new();
    let mut abandoned_before = 0;
    let mut last = Instant::now();
    let mut outages = Outages::default();
    loop {
        tokio::select! {
            _ = crate::util::stopped(&mut stop) => break,
            _ = ticker.tick() => {
                let now = Instant::now();
                let abandoned = room.transport_stats().packets_abandoned;
                let link = LinkLine {
                    report: scheduler.report(),
                    abandoned: abandoned - abandoned_before,
                };
                abandoned_before = abandoned;
                print_stats(&pipeline, &link, &mut previous, now - last);
                last = now;
            }
            event = events.recv() => match event {
                Some(RoomEvent::Resuming { reason }) => outages.resuming(&reason),
                Some(RoomEvent::Resumed) => outages.resumed(),
                Some(RoomEvent::Reconnecting { reason }) => outages.lost(&reason),
                Some(RoomEvent::Reconnected) => outages.reconnected("tracks published again"),
                Some(RoomEvent::Disconnected { reason }) => {
                    stop_sources.send_replace(true);
                    pipeline.shutdown().await;
                    scheduler.stop();
                    return Err(DaemonError::Runtime(format!("the room ended: {reason}")));
                }
                Some(_) => {}
                None => break,
            },
        }
    }
    stop_sources.send_replace(true);
    for task in source_tasks {
        _ = task.await;
    }
    let workers = pipeline.workers();
    let unrouted = pipeline.unrouted();
    pipeline.shutdown().await;
    scheduler.stop();
    room.leave().await;
    let tracks: Vec<_> = workers.iter().map(|w| (w.plan.clone(), w.counters.snapshot())).collect();
    let network = room.transport_stats();
    let summary = RunSummary {
        elapsed_s: started.elapsed().as_secs_f64(),
        tracks: tracks
            .iter()
            .map(|(plan, stats)| TrackSummary {
                track: plan.track.clone(),
                source: plan.source.clone(),
                topic: plan.topic.clone(),
                dropped: stats.dropped(),
                stats: *stats,
            })
            .collect(),
        unrouted,
        network: NetworkSummary {
            frames_sent: network.frames_sent,
            frames_dropped: network.frames_dropped,
            packets_abandoned: network.packets_abandoned,
        },
        outages: outages.report(),
        sources: restarts
            .into_iter()
            .map(|(source, restarts)| SourceSummary {
                source,
                restarts: restarts.load(Ordering::Relaxed),
            })
            .collect(),
    };
    eprintln!("{}", summary.text());
    Ok(PublishReport { tracks, summary })
}

/// The link part of a stats line: the scheduler's view, and the packets SCTP gave up on in
/// the interval.
struct LinkLine {
    report: LinkReport,
    abandoned: u64,
}

fn print_stats(
    pipeline: &Pipeline,
    link: &LinkLine,
    previous: &mut Vec<TrackStats>,
    elapsed: Duration,
) {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let mut parts = Vec::new();
    for (i, worker) in pipeline.workers().iter().enumerate() {
        let now = worker.counters.snapshot();
        let before = previous.get(i).copied().unwrap_or_default();
        parts.push(format!(
            "{} {:.1} fps {:.2}->{:.2} MB/s drops {} lost {}",
            worker.plan.track,
            (now.frames - before.frames) as f64 / secs,
            (now.bytes_in - before.bytes_in) as f64 / secs / 1e6,
            (now.bytes_out - before.bytes_out) as f64 / secs / 1e6,
            now.dropped() - before.dropped(),
            now.lost - before.lost
        ));
        if i < previous.len() {
            previous[i] = now;
        } else {
            previous.push(now);
        }
    }
    parts.push(link_estimate(link));
    eprintln!("stats: {}", parts.join(" | "));
}

/// The link as measured: delivery rate, round trip and queue, in-flight window, and what it
/// did not deliver.
fn link_estimate(line: &LinkLine) -> String {
    let report = &line.report;
    let link = &report.link;
    if link.unlimited {
        return "link: in-process".into();
    }
    let ms =
        |d: Option<Duration>| d.map_or("?".into(), |d| format!("{:.0}", d.as_secs_f64() * 1e3));
    format!(
        "link {} Mbit/s rtt {} ms queue {} ms window {} KB in flight {} KB lost {}",
        link.delivery_rate.map_or("?".into(), |rate| format!("{:.2}", rate * 8.0 / 1e6)),
        ms(link.min_rtt),
        ms(link.queueing_delay()),
        report.window / 1000,
        link.bytes_in_flight / 1000,
        line.abandoned
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outage_line_counts_resumes_and_reconnects() {
        assert_eq!(OutageReport::default().line(), None);
        let report = OutageReport {
            resumed_after_s: vec![1.24],
            reconnected_after_s: vec![2.0, 18.5],
            still_reconnecting_s: Some(3.0),
        };
        assert_eq!(
            report.line().unwrap(),
            "connection lost 4 time(s), resumed after 1.2 s, reconnected after 2.0 s, 18.5 s, \
             still reconnecting after 3.0 s"
        );
    }
}
