//! The command line: parses arguments, sets up logging, and runs the chosen command.

use crate::bench::run::{RunBench, RunCase, RunReport};
use crate::bench::{self, Case, TransportBench};
use clap::{Parser, Subcommand};
use dtbridge::daemon::{self, DaemonError};
use dtbridge::livekit::{ENV_API_KEY, ENV_API_SECRET, ENV_URL, RoomError};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit status for invalid configuration or arguments.
pub const EXIT_CONFIG: u8 = 2;
/// Exit status when the LiveKit server cannot be reached or refuses to let us in.
pub const EXIT_CONNECT: u8 = 3;
/// Exit status for failures while running.
pub const EXIT_RUNTIME: u8 = 1;

/// Robot data on LiveKit data tracks, recorded to MCAP.
#[derive(Debug, Parser)]
#[command(name = "dtbridge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publish the configured sources on data tracks until SIGINT or SIGTERM.
    Run {
        /// The configuration file.
        #[arg(short, long)]
        config: PathBuf,
        /// Also write the closing summary to this file, as JSON.
        #[arg(long, value_name = "FILE")]
        summary_json: Option<PathBuf>,
    },
    /// Validate a configuration and print the routing plan.
    Check {
        /// The configuration file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Record the room's data tracks to MCAP until SIGINT or SIGTERM, with a live view for
    /// Foxglove when the configuration has a `[view]` section or `--view` is given.
    Record {
        /// The configuration file (its `[livekit]`, `[record]` and `[view]` sections).
        #[arg(short, long)]
        config: PathBuf,
        /// Also write the closing summary to this file, as JSON.
        #[arg(long, value_name = "FILE")]
        summary_json: Option<PathBuf>,
        /// Serve a live view (a Foxglove WebSocket server) on HOST:PORT (default: `[view]
        /// address`, else 127.0.0.1:8765).
        #[arg(long, value_name = "HOST:PORT", num_args = 0..=1, default_missing_value = "")]
        view: Option<String>,
    },
    /// Serve the room's data tracks live to Foxglove (a Foxglove WebSocket server) until
    /// SIGINT or SIGTERM, without recording; a track is received only while a Foxglove
    /// client shows it.
    View {
        /// The configuration file (its `[livekit]`, `[record]` patterns and `[view]`).
        #[arg(short, long)]
        config: PathBuf,
        /// Serve on HOST:PORT (default: `[view] address`, else 127.0.0.1:8765).
        #[arg(long, value_name = "HOST:PORT")]
        address: Option<String>,
        /// Also write the closing summary to this file, as JSON.
        #[arg(long, value_name = "FILE")]
        summary_json: Option<PathBuf>,
    },
    /// Run the synthetic robot and the recorder in one process, no server needed, and write
    /// an MCAP file to open in Foxglove.
    Demo {
        /// Seconds to record.
        #[arg(long, default_value = "5", value_parser = parse_positive_seconds)]
        seconds: Duration,
        /// The file to write.
        #[arg(long, default_value = "demo.mcap")]
        output: PathBuf,
        /// Also serve a live view for Foxglove on HOST:PORT (default 127.0.0.1:8765) and keep
        /// going until Ctrl-C instead of `--seconds`.
        #[arg(long, value_name = "HOST:PORT", num_args = 0..=1, default_missing_value = dtbridge::view::DEFAULT_ADDRESS)]
        view: Option<String>,
    },
    /// Rewrite an unfinished MCAP file (recorder killed, power lost) into a complete,
    /// indexed one.
    Repair {
        /// The damaged file.
        input: PathBuf,
        /// Where to write the repaired file (default: INPUT with `.repaired.mcap`).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Measure performance.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Throughput, loss and latency of data tracks through a LiveKit server, side by side with
    /// the official Python SDK as publisher.
    Transport(TransportArgs),
    /// Per-frame cost of the publish pipeline's encoder (CDR, zstd, JPEG, PNG) on
    /// RealSense-sized frames, in-process, next to a `memcpy` of the frame.
    Codec {
        /// Frames measured per operation (medians over them).
        #[arg(long, default_value_t = 100)]
        runs: usize,
    },
    /// Per-frame cost of end-to-end encryption (sealing on publish, opening on receive) for
    /// 1 KB, 64 KB and 1 MB frames and one second of the RealSense-like load, in-process,
    /// next to a `memcpy` of the frame.
    E2ee {
        /// Rounds (medians over them).
        #[arg(long, default_value_t = 9)]
        runs: usize,
    },
    /// Recorder throughput to MCAP with zstd chunks on one core, and the latency it adds,
    /// next to plain file writes of the same bytes.
    Recorder {
        /// Frames per run.
        #[arg(long, default_value_t = 2000)]
        frames: usize,
        /// Runs (medians over them).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// `dtbridge run` end to end through a LiveKit server (LIVEKIT_URL, LIVEKIT_API_KEY,
    /// LIVEKIT_API_SECRET): received rate, latency and CPU per track.
    Run {
        /// Seconds of the measuring window (after a 3 s warm-up).
        #[arg(long, default_value = "20", value_parser = parse_positive_seconds)]
        seconds: Duration,
        /// The `dtbridge run` configuration; the bench joins its room. `A+B` runs a process
        /// per configuration at once (the same load split over several bridges, in A's room).
        /// Repeated, the cases are measured alternately and compared side by side.
        #[arg(long, default_value = "config/bench-realsense.toml")]
        config: Vec<RunCase>,
        /// A track to measure that the sources find at run time (a ROS 2 topic), besides
        /// those of the configurations' plans. Repeated for several.
        #[arg(long = "discovered-track")]
        discovered_tracks: Vec<String>,
        /// Runs per configuration (medians and ranges over them).
        #[arg(long, default_value_t = 1)]
        runs: usize,
    },
}

#[derive(Debug, clap::Args)]
struct TransportArgs {
    /// Server URL.
    #[arg(long, env = ENV_URL)]
    url: String,
    /// API key.
    #[arg(long, env = ENV_API_KEY)]
    api_key: String,
    /// API secret.
    #[arg(long, env = ENV_API_SECRET, hide_env_values = true)]
    api_secret: String,
    /// A case as FRAME_BYTES@FRAMES_PER_SECOND; repeat for several (default: 1 KB@1000,
    /// 64 KB@200, 256 KB@60, 1 MB@30).
    #[arg(long = "case")]
    cases: Vec<Case>,
    /// Seconds each case offers frames.
    #[arg(long, default_value = "5", value_parser = parse_positive_seconds)]
    duration: Duration,
    /// Python interpreter with the official `livekit` SDK; without it, the Python column is
    /// left out.
    #[arg(long, env = "DTBRIDGE_PYTHON")]
    python: Option<PathBuf>,
    /// The Python peer script.
    #[arg(long, default_value = "tests/peers/lk_peer.py")]
    peer_script: PathBuf,
    /// Offered load of the overload check, FRAME_BYTES@FRAMES_PER_SECOND.
    #[arg(long, default_value = "1048576@500")]
    flood: Case,
}

/// A positive number of seconds on the command line (see [`dtbridge::duration`]).
fn parse_positive_seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text.parse().map_err(|_| format!("'{text}' is not a number of seconds"))?;
    dtbridge::duration::positive_seconds(value)
}

/// Runs the command line and returns the process exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse_from(without_ros_args(std::env::args_os()));
    dtbridge::logging::init();
    // `run` loads its configuration before the runtime starts any thread: the process's
    // environment may only change while it has one thread.
    let loaded_run = match &cli.command {
        Command::Run { config, .. } => match load_run_config(config) {
            Ok(loaded) => Some(loaded),
            Err(err) => {
                eprintln!("error: {err:#}");
                return ExitCode::from(exit_status(&err));
            }
        },
        _ => None,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run { summary_json, .. } => {
                run(loaded_run.expect("loaded before the runtime"), summary_json.as_deref()).await
            }
            Command::Check { config } => check(&config),
            Command::Record { config, summary_json, view } => {
                record(&config, summary_json.as_deref(), view.as_deref()).await
            }
            Command::View { config, address, summary_json } => {
                view(&config, address.as_deref(), summary_json.as_deref()).await
            }
            Command::Demo { seconds, output, view } => {
                demo(seconds, &output, view.as_deref()).await
            }
            Command::Repair { input, output } => repair(&input, output),
            Command::Bench(BenchCommand::Transport(args)) => bench_transport(args).await,
            Command::Bench(BenchCommand::Codec { runs }) => bench_codec(runs),
            Command::Bench(BenchCommand::E2ee { runs }) => {
                println!("{}", crate::bench::e2ee::run(runs)?.to_markdown());
                Ok(())
            }
            Command::Bench(BenchCommand::Recorder { frames, runs }) => {
                let report = crate::bench::recorder::run(frames, runs)?;
                println!("{}", report.to_markdown());
                Ok(())
            }
            Command::Bench(BenchCommand::Run { seconds, config, discovered_tracks, runs }) => {
                bench_run(seconds, config, discovered_tracks, runs).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_status(&err))
        }
    }
}

/// The command line without its ROS arguments (`--ros-args ... [--]`), which `ros2 launch`
/// appends to a node's command (e.g. `-r __node:=dtbridge`) and which rcl reads for itself.
fn without_ros_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut kept = Vec::new();
    let mut in_ros_args = false;
    for arg in args {
        match (in_ros_args, arg.to_str()) {
            (false, Some("--ros-args")) => in_ros_args = true,
            (true, Some("--")) => in_ros_args = false,
            (true, _) => {}
            (false, _) => kept.push(arg),
        }
    }
    kept
}

/// Loads `run`'s configuration and sets the process's ROS domain from it. rcl reads the
/// domain only from `ROS_DOMAIN_ID` when the ROS context is created, and r2r offers no other
/// way in.
fn load_run_config(config: &std::path::Path) -> anyhow::Result<dtbridge::config::Loaded> {
    let loaded = dtbridge::config::load(config).map_err(DaemonError::from)?;
    if let Some(id) = loaded.config.ros_domain_id() {
        // SAFETY: called from `main` before the async runtime (or anything else) has started
        // a thread, so nothing can read the environment concurrently.
        unsafe { std::env::set_var("ROS_DOMAIN_ID", id.to_string()) };
    }
    Ok(loaded)
}

async fn run(
    loaded: dtbridge::config::Loaded,
    summary_json: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let prepared = daemon::prepare_loaded(loaded)?;
    let report = daemon::run(prepared, stop_on_signal()).await?;
    if let Some(path) = summary_json {
        write_json(path, &report.summary)?;
    }
    Ok(())
}

/// Writes a summary for `--summary-json`.
fn write_json(path: &std::path::Path, summary: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(summary)?;
    std::fs::write(path, text + "\n")
        .map_err(|err| anyhow::anyhow!("cannot write the summary to {}: {err}", path.display()))
}

/// The live view's address: `--view`/`--address` when given with a value, else the
/// configuration's `[view] address` when `[view]` is there or the flag was given, else none.
fn view_address(loaded: &dtbridge::config::Loaded, flag: Option<&str>) -> Option<String> {
    let configured = loaded.config.view.as_ref().map(|view| view.address.clone());
    match flag {
        Some("") | None => {
            configured.or_else(|| flag.map(|_| dtbridge::view::DEFAULT_ADDRESS.to_string()))
        }
        Some(address) => Some(address.to_string()),
    }
}

async fn record(
    config: &std::path::Path,
    summary_json: Option<&std::path::Path>,
    view: Option<&str>,
) -> anyhow::Result<()> {
    let loaded = dtbridge::config::load(config).map_err(DaemonError::from)?;
    let view = view_address(&loaded, view);
    let report = dtbridge::record::run(loaded, view.as_deref(), stop_on_signal()).await?;
    for file in &report.summary.files {
        eprintln!(
            "wrote {}: {} messages, {:.1} MB ({:?})",
            file.path.display(),
            file.messages,
            file.bytes as f64 / 1e6,
            file.status
        );
    }
    for track in &report.summary.stats.tracks {
        eprintln!(
            "  {:?} from {:?}: {} frames, {:.1} MB, missing {} (gaps in the publisher's timestamps)",
            track.topic.as_deref().unwrap_or(&track.track),
            track.publisher,
            track.frames,
            track.bytes as f64 / 1e6,
            track.missing
        );
    }
    eprintln!("frames dropped because the writer was behind: {}", report.dropped_behind);
    if report.tracks_over_limit > 0 {
        eprintln!("tracks left out over record.max_tracks: {}", report.tracks_over_limit);
    }
    if let Some(line) = report.outages.line() {
        eprintln!("{line}");
    }
    print_undecryptable(&report.undecryptable);
    if let Some(path) = summary_json {
        write_json(path, &report)?;
    }
    Ok(())
}

/// The frames a summary could not decrypt, one line per publisher and reason.
fn print_undecryptable(undecryptable: &[dtbridge::livekit::Undecryptable]) {
    for dropped in undecryptable {
        eprintln!(
            "frames from '{}' dropped, not decryptable ({:?}): {}",
            dtbridge::text::printable(&dropped.publisher),
            dropped.reason,
            dropped.frames
        );
    }
}

async fn view(
    config: &std::path::Path,
    address: Option<&str>,
    summary_json: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let loaded = dtbridge::config::load(config).map_err(DaemonError::from)?;
    let address = view_address(&loaded, Some(address.unwrap_or("")))
        .unwrap_or_else(|| dtbridge::view::DEFAULT_ADDRESS.into());
    let report = dtbridge::record::view(loaded, &address, stop_on_signal()).await?;
    for channel in &report.channels {
        eprintln!("  {:?}: {} frames", channel.topic, channel.frames);
    }
    if let Some(line) = report.outages.line() {
        eprintln!("{line}");
    }
    print_undecryptable(&report.undecryptable);
    if let Some(path) = summary_json {
        write_json(path, &report)?;
    }
    Ok(())
}

async fn demo(
    seconds: Duration,
    output: &std::path::Path,
    view: Option<&str>,
) -> anyhow::Result<()> {
    let until = match view {
        Some(address) => crate::demo::Until::Stopped { view: address, stop: stop_on_signal() },
        None => crate::demo::Until::Elapsed(seconds),
    };
    println!("{}", crate::demo::run(until, output).await?);
    Ok(())
}

fn repair(input: &std::path::Path, output: Option<PathBuf>) -> anyhow::Result<()> {
    let output = output.unwrap_or_else(|| input.with_extension("repaired.mcap"));
    let report = dtbridge::recorder::repair(input, &output)?;
    println!("{report:?}");
    println!("wrote {}", output.display());
    Ok(())
}

/// A stop flag raised by SIGINT or SIGTERM.
fn stop_on_signal() -> tokio::sync::watch::Receiver<bool> {
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stopping");
        stop_tx.send_replace(true);
    });
    stop
}

/// Resolves on SIGINT or SIGTERM.
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

fn check(config: &std::path::Path) -> anyhow::Result<()> {
    let loaded = dtbridge::config::load(config).map_err(DaemonError::from)?;
    // `[record]` too: the same file often serves `run` and `record`.
    dtbridge::record::recorder_config(&loaded)?;
    let prepared = daemon::prepare_loaded(loaded)?;
    print!("{}", prepared.plan.table());
    for error in &prepared.failed {
        println!("source failed: {error}");
    }
    if !prepared.failed.is_empty() {
        anyhow::bail!("{} source(s) cannot be opened", prepared.failed.len());
    }
    println!("{}: ok", config.display());
    Ok(())
}

/// Picks the exit status from the error's cause: configuration, connection, or anything else.
fn exit_status(err: &anyhow::Error) -> u8 {
    if let Some(daemon) = err.chain().find_map(|cause| cause.downcast_ref::<DaemonError>()) {
        return match daemon {
            DaemonError::Config(_) => EXIT_CONFIG,
            DaemonError::Connect(RoomError::Config(_)) => EXIT_CONFIG,
            DaemonError::Connect(_) => EXIT_CONNECT,
            DaemonError::Runtime(_) => EXIT_RUNTIME,
        };
    }
    match err.chain().find_map(|cause| cause.downcast_ref::<RoomError>()) {
        Some(RoomError::Config(_)) => EXIT_CONFIG,
        Some(RoomError::Auth { .. } | RoomError::Connect { .. } | RoomError::Timeout { .. }) => {
            EXIT_CONNECT
        }
        _ => EXIT_RUNTIME,
    }
}

async fn bench_transport(args: TransportArgs) -> anyhow::Result<()> {
    let bench = TransportBench {
        url: args.url,
        api_key: args.api_key,
        api_secret: args.api_secret,
        cases: if args.cases.is_empty() { bench::DEFAULT_CASES.to_vec() } else { args.cases },
        duration: args.duration,
        python: args.python,
        peer_script: args.peer_script,
        flood: args.flood,
    };
    let report = bench.run().await?;
    println!("{}", report.to_markdown());
    Ok(())
}

fn bench_codec(runs: usize) -> anyhow::Result<()> {
    if runs == 0 {
        anyhow::bail!("--runs must be at least 1");
    }
    println!("{}", bench::codec::run(runs)?.to_markdown());
    Ok(())
}

async fn bench_run(
    seconds: Duration,
    cases: Vec<RunCase>,
    discovered_tracks: Vec<String>,
    runs: usize,
) -> anyhow::Result<()> {
    if runs == 0 {
        anyhow::bail!("--runs must be at least 1");
    }
    let bench = |case: &RunCase| RunBench {
        case: case.clone(),
        discovered_tracks: discovered_tracks.clone(),
        window: seconds,
    };
    if let ([case], 1) = (cases.as_slice(), runs) {
        let bench = bench(case);
        println!("{}", bench.run().await?.to_markdown());
        return Ok(());
    }
    // Alternating, so that a change in the machine's load affects every case alike.
    let mut reports: Vec<Vec<RunReport>> = cases.iter().map(|_| Vec::new()).collect();
    for run in 1..=runs {
        for (case, reports) in cases.iter().zip(&mut reports) {
            eprintln!("bench run {run}/{runs}: {case}");
            let report = bench(case).run().await?;
            eprintln!("{}", report.to_markdown());
            reports.push(report);
        }
    }
    println!("{}", crate::bench::run::compare_to_markdown(&cases, &reports));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::without_ros_args;

    #[test]
    fn ros_arguments_from_ros2_launch_are_left_to_rcl() {
        let args = |line: &str| line.split(' ').map(Into::into).collect::<Vec<_>>();
        let kept = |line: &str| without_ros_args(args(line));
        assert_eq!(
            kept("dtbridge run -c a.toml --ros-args -r __node:=x"),
            args("dtbridge run -c a.toml")
        );
        assert_eq!(
            kept("dtbridge run --ros-args -r __ns:=/r -- -c a.toml"),
            args("dtbridge run -c a.toml")
        );
        assert_eq!(kept("dtbridge check -c a.toml"), args("dtbridge check -c a.toml"));
    }
}
