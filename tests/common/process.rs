//! `dtbridge` as a child process, the way users run it.

use super::server::{API_KEY, API_SECRET, TestServer};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running `dtbridge` command whose stderr is collected as it comes; killed if the test
/// ends early.
pub struct Process {
    pub child: Child,
    log: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Process {
    /// `dtbridge ARGS -c CONFIG` joined to `server`, logging dtbridge's info and the live
    /// view server's warnings (or as `DTBRIDGE_TEST_RUST_LOG` says, to look into a failure).
    pub fn spawn(args: &[&str], config: &Path, server: &TestServer) -> Process {
        Self::spawn_in(None, args, config, server)
    }

    /// [`Process::spawn`] inside the named network namespace (one side of an emulated link).
    pub fn spawn_in(
        namespace: Option<&str>,
        args: &[&str],
        config: &Path,
        server: &TestServer,
    ) -> Process {
        Process::watch(Self::command_in(namespace, args, config, server))
    }

    /// [`Process::spawn`] with a ready `LIVEKIT_TOKEN` in place of the API key and secret.
    pub fn spawn_with_token(
        args: &[&str],
        config: &Path,
        server: &TestServer,
        token: &str,
    ) -> Process {
        let mut command = Self::command_in(None, args, config, server);
        command
            .env("LIVEKIT_TOKEN", token)
            .env_remove("LIVEKIT_API_KEY")
            .env_remove("LIVEKIT_API_SECRET");
        Process::watch(command)
    }

    /// The command [`Process::spawn_in`] starts, to be adjusted before [`Process::watch`].
    pub fn command_in(
        namespace: Option<&str>,
        args: &[&str],
        config: &Path,
        server: &TestServer,
    ) -> Command {
        let binary = env!("CARGO_BIN_EXE_dtbridge");
        let command = match namespace {
            Some(name) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", name, binary]);
                command
            }
            None => Command::new(binary),
        };
        Self::joined(command, args, config, server)
    }

    /// `command`, a `dtbridge` (this build's, or one installed elsewhere), given
    /// `ARGS -c CONFIG`, the server's URL and credentials, and the log level.
    pub fn joined(
        mut command: Command,
        args: &[&str],
        config: &Path,
        server: &TestServer,
    ) -> Command {
        command
            .args(args)
            .arg("-c")
            .arg(config)
            .env("LIVEKIT_URL", server.url())
            .env("LIVEKIT_API_KEY", API_KEY)
            .env("LIVEKIT_API_SECRET", API_SECRET)
            .env(
                "RUST_LOG",
                std::env::var("DTBRIDGE_TEST_RUST_LOG")
                    .unwrap_or_else(|_| "dtbridge=info,foxglove=warn".into()),
            );
        command
    }

    /// Starts `command`, collecting its stderr.
    pub fn watch(mut command: Command) -> Process {
        let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        // Whole lines, so that no UTF-8 character is split between two reads.
        let reader = std::thread::spawn(move || {
            let mut line = Vec::new();
            while let Ok(1..) = stderr.read_until(b'\n', &mut line) {
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&line));
                line.clear();
            }
        });
        Process { child, log, reader: Some(reader) }
    }

    /// Waits up to `timeout` until stderr holds `text` `count` times; whether it did.
    pub fn wait_for(&self, text: &str, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log.lock().unwrap().matches(text).count() >= count {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, then the exit status and stderr.
    pub fn stop(mut self) -> (bool, String) {
        Command::new("kill").arg(self.child.id().to_string()).status().unwrap();
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        let log = self.log.lock().unwrap().clone();
        (status.success(), log)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        _ = self.child.kill();
        _ = self.child.wait();
    }
}

/// What `dtbridge run --summary-json FILE` wrote when it stopped.
pub struct RunSummary {
    /// Seconds the run lasted.
    pub elapsed_s: f64,
    /// Per source topic: frames sent, and frames dropped before sending.
    pub topics: BTreeMap<String, TopicSummary>,
    /// Its connection's outages.
    pub outages: Outages,
    /// Packets sent that SCTP gave up on (`network.packets_abandoned`).
    pub packets_abandoned: u64,
}

/// How often a process's connection was lost, as its summary (`--summary-json`) says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outages {
    /// Losses that ended in the session resumed.
    pub resumed: usize,
    /// Losses that ended in a new session.
    pub reconnected: usize,
    /// Whether a loss was still going on at the end.
    pub ongoing: bool,
}

/// The outages a summary (of `run` or `record`) lists.
pub fn outages(summary: &serde_json::Value) -> Outages {
    let outages = &summary["outages"];
    let count = |key: &str| outages[key].as_array().unwrap_or_else(|| panic!("{key}")).len();
    Outages {
        resumed: count("resumed_after_s"),
        reconnected: count("reconnected_after_s"),
        ongoing: !outages["still_reconnecting_s"].is_null(),
    }
}

/// The JSON summary a process wrote to `path`; panics if there is none.
pub fn summary_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("no summary at {}: {err}", path.display()));
    serde_json::from_str(&text).expect("a JSON summary")
}

/// One track of a [`RunSummary`].
pub struct TopicSummary {
    pub frames: u64,
    /// Of the frames sent, those the network lost (SCTP gave up on them).
    pub lost: u64,
    pub dropped: u64,
    /// Of those dropped, the ones that waited for the link: shed for bandwidth or stale.
    pub waited_out: u64,
}

/// The summary `dtbridge run` wrote to `path` (its `--summary-json`); panics if there is none.
pub fn run_summary(path: &Path) -> RunSummary {
    let json = summary_json(path);
    let count = |track: &serde_json::Value, key: &str| track[key].as_u64().expect(key);
    let topics = json["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .map(|track| {
            let topic = track["topic"].as_str().expect("topic").to_string();
            (
                topic,
                TopicSummary {
                    frames: count(track, "frames"),
                    lost: count(track, "lost"),
                    dropped: count(track, "dropped"),
                    waited_out: count(track, "shed") + count(track, "stale"),
                },
            )
        })
        .collect();
    RunSummary {
        elapsed_s: json["elapsed_s"].as_f64().expect("elapsed_s"),
        packets_abandoned: json["network"]["packets_abandoned"]
            .as_u64()
            .expect("packets_abandoned"),
        topics,
        outages: outages(&json),
    }
}

/// Frames of `topic` recorded so far, from the latest progress line in `dtbridge record`'s
/// log ("recording FILE: X MB | TOPIC N frames Y MB | ... | dropped ...").
pub fn recorded_so_far(log: &str, topic: &str) -> u64 {
    let Some(line) = log.lines().rev().find(|line| line.starts_with("recording ")) else {
        return 0;
    };
    line.split(" | ")
        .find_map(|part| {
            part.strip_prefix(&format!("{topic} "))?.split_once(" frames")?.0.parse().ok()
        })
        .unwrap_or(0)
}

/// The only `.mcap` file in `dir`.
pub fn recorded_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mcap"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

/// `operator.toml` in `dir`: `dtbridge record` in `room`, writing to `dir/out`.
pub fn write_operator_config(dir: &Path, room: &str) -> PathBuf {
    let path = dir.join("operator.toml");
    let text = format!(
        "[livekit]\nroom = \"{room}\"\nidentity = \"operator\"\n\n[record]\noutput_dir = \"out\"\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}
