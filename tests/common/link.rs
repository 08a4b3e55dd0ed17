//! An emulated network link between a robot and a server namespace, for end-to-end tests:
//! `dtbridge-linkemu` as a child process (docs/link-emulator.md).
//!
//! ```ignore
//! let Some(mut link) = EmulatedLink::start("my_test", &["--profile", "lte"]) else { return };
//! let server = link.command(Side::Server, "livekit-server");   // a Command run in <name>-srv
//! let socket = link.enter(Side::Robot, || UdpSocket::bind("0.0.0.0:0")); // made in <name>-bot
//! link.control("rate up 2mbit");                               // answered by an ack line
//! let counters = link.stats();                                 // {"up": {...}, "down": {...}}
//! ```
//!
//! Needs root, `ip` (iproute2) and `ethtool`; outside CI a test without them is skipped
//! loudly, in CI it fails. Dropping the link ends the emulator, which deletes its namespaces.

use super::server::skip;
use serde_json::Value;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One end of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The robot's namespace (`<name>-bot`); its traffic to the server goes "up".
    Robot,
    /// The server's namespace (`<name>-srv`); its traffic to the robot goes "down".
    Server,
}

/// A running `dtbridge-linkemu`; stopped (and its namespaces deleted) on drop.
pub struct EmulatedLink {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The emulator's stdout, one parsed JSON line at a time.
    lines: Receiver<Value>,
    stderr: Arc<Mutex<String>>,
    ready: Value,
    name: String,
}

/// How long the emulator may take to build its namespaces, answer a command, or stop.
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

impl EmulatedLink {
    /// Starts the emulator with `args` (e.g. `["--profile", "lte", "--loss", "0"]`) under a
    /// name unique to this process and waits for its `ready` line. `None` after
    /// [`skip`] when a prerequisite is missing.
    pub fn start(test: &str, args: &[&str]) -> Option<EmulatedLink> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 || !in_initial_user_namespace() {
            // Root of a user namespace (netns-run.sh for a normal user) cannot mount the
            // named namespaces under /run/netns.
            skip(test, "the link emulator needs real root (named network namespaces)");
            return None;
        }
        for tool in ["ip", "ethtool"] {
            if !on_path(tool) {
                skip(test, &format!("`{tool}` is not installed (the link emulator needs it)"));
                return None;
            }
        }
        let name = unique_name();
        let mut child = Command::new(env!("CARGO_BIN_EXE_dtbridge-linkemu"))
            .arg("--name")
            .arg(&name)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start dtbridge-linkemu");
        let stdin = child.stdin.take();
        let lines = json_lines(child.stdout.take().expect("stdout"));
        let stderr = collect(child.stderr.take().expect("stderr"));
        let mut link = EmulatedLink { child, stdin, lines, stderr, ready: Value::Null, name };
        link.ready = link.next_line(|line| line["event"] == "ready");
        Some(link)
    }

    /// The `ready` line: namespaces, interfaces, addresses, `scheduling`, and `params` (the
    /// effective settings, `params.up.delay_ms` and so on).
    pub fn ready(&self) -> &Value {
        &self.ready
    }

    /// The robot's address (in the robot namespace).
    pub fn robot_ip(&self) -> Ipv4Addr {
        self.address("robot_ip")
    }

    /// The server's address (in the server namespace).
    pub fn server_ip(&self) -> Ipv4Addr {
        self.address("server_ip")
    }

    fn address(&self, key: &str) -> Ipv4Addr {
        let text = self.ready[key].as_str().unwrap_or_else(|| panic!("no {key} in ready line"));
        text.parse().unwrap_or_else(|err| panic!("{key} {text:?}: {err}"))
    }

    /// The network namespace of `side`.
    pub fn namespace(&self, side: Side) -> &str {
        let key = match side {
            Side::Robot => "robot",
            Side::Server => "server",
        };
        self.ready["namespaces"][key].as_str().expect("namespaces in ready line")
    }

    /// `program` to run inside `side`'s namespace (`ip netns exec NS program`); add its
    /// arguments, environment and stdio as usual.
    pub fn command(&self, side: Side, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", self.namespace(side)]).arg(program);
        command
    }

    /// Runs `work` on a thread inside `side`'s namespace and returns its result: sockets
    /// made there belong to that namespace, whichever thread uses them afterwards.
    pub fn enter<T: Send>(&self, side: Side, work: impl FnOnce() -> T + Send) -> T {
        in_namespace(self.namespace(side), work)
    }

    /// Sends one control command (`rate up 2mbit`, `cut`, `restore`, `profile lte`, `stats`)
    /// and returns the line answering it: `"event"` is `ack` (with `params`), `stats` or
    /// `error`.
    pub fn control(&mut self, command: &str) -> Value {
        let stdin = self.stdin.as_mut().expect("the emulator was stopped");
        writeln!(stdin, "{command}").and_then(|()| stdin.flush()).unwrap_or_else(|err| {
            panic!("cannot send {command:?} to the emulator: {err}\n{}", self.stderr_text())
        });
        self.next_line(|line| line["command"] == command)
    }

    /// The counters now: `{"up": {...}, "down": {...}}`, each with `forwarded_packets`,
    /// `forwarded_bytes`, `dropped_loss`, `dropped_queue`, `dropped_cut`, `dropped_overflow`,
    /// `send_errors`, `queue_delay_ms` and `send_lateness_ms` (`p50`, `p99`).
    pub fn stats(&mut self) -> Value {
        let answer = self.control("stats");
        assert_eq!(answer["event"], "stats", "{answer}");
        answer["counters"].clone()
    }

    /// Ends the emulator by closing its stdin and returns its `exit` line (final counters);
    /// its namespaces are gone when this returns.
    pub fn stop(mut self) -> Value {
        self.stdin = None;
        let exit = self.next_line(|line| line["event"] == "exit");
        self.wait_exit();
        exit
    }

    /// The emulator's stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Ends the emulator with SIGTERM (as a supervisor would) and returns its `exit` line;
    /// its namespaces are gone when this returns.
    pub fn terminate(mut self) -> Value {
        // SAFETY: kill(2) on our own child, which has not been waited for yet.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
        // Stdin stays open until the exit line, so that it is the signal that ends the run.
        let exit = self.next_line(|line| line["event"] == "exit");
        self.stdin = None;
        self.wait_exit();
        exit
    }

    /// The next stdout line for which `pick` holds (others are skipped), or a panic with the
    /// emulator's stderr if none comes within [`ANSWER_WITHIN`].
    fn next_line(&mut self, pick: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + ANSWER_WITHIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pick(&line) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no expected line from the emulator in time:\n{}", self.stderr_text())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the emulator's stdout ended:\n{}", self.stderr_text())
                }
            }
        }
    }

    /// Waits (bounded) for the process to end, killing it if it does not.
    fn wait_exit(&mut self) {
        let deadline = Instant::now() + ANSWER_WITHIN;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        _ = self.child.kill();
        _ = self.child.wait();
    }
}

impl Drop for EmulatedLink {
    fn drop(&mut self) {
        // Closing stdin ends the emulator, which deletes its namespaces; --cleanup catches
        // the case where it could not (it was killed).
        self.stdin = None;
        self.wait_exit();
        _ = Command::new(env!("CARGO_BIN_EXE_dtbridge-linkemu"))
            .args(["--cleanup", &self.name])
            .status();
    }
}

/// Runs `work` on a thread inside the named network namespace (`/run/netns/NAME`) and
/// returns its result.
pub fn in_namespace<T: Send>(name: &str, work: impl FnOnce() -> T + Send) -> T {
    let path = Path::new("/run/netns").join(name);
    let namespace = std::fs::File::open(&path)
        .unwrap_or_else(|err| panic!("cannot open {}: {err}", path.display()));
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                use std::os::fd::AsRawFd;
                // SAFETY: setns on a valid namespace descriptor moves only this thread.
                let rc = unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {}: {}", path.display(), std::io::Error::last_os_error());
                work()
            })
            .join()
            .expect("work inside the namespace panicked")
    })
}

/// A namespace prefix no other test (in this or another test process) uses.
fn unique_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("dtle{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Whether this process's user ids are the machine's own (the whole range maps onto itself).
fn in_initial_user_namespace() -> bool {
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"]
}

fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| dir.join(tool).is_file())
}

/// Parses `stdout` line by line on a thread; the channel ends with the stream.
fn json_lines(stdout: impl Read + Send + 'static) -> Receiver<Value> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // Every stdout line is JSON; anything else is a bug worth seeing in the output.
            let Ok(value) = serde_json::from_str(&line) else {
                eprintln!("dtbridge-linkemu printed a line that is not JSON: {line}");
                break;
            };
            if sender.send(value).is_err() {
                break;
            }
        }
    });
    receiver
}

/// Collects `stderr` on a thread, whole lines at a time.
fn collect(stderr: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let mut text = sink.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
    text
}
