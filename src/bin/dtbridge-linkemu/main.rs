//! `dtbridge-linkemu`: a deterministic userspace network link emulator for dtbridge's tests
//! and benchmarks. It is a test and benchmark tool, not part of the daemon.
//!
//! The kernel this project tests on has no `netem`, so delay, jitter and loss cannot come
//! from `tc`. This program makes three network namespaces (robot, emulator, server), joins
//! them with two veth pairs, and bridges raw Ethernet frames between the emulator's two
//! interfaces, applying per direction a rate (serialization on a virtual clock), a tail-drop
//! queue limit, a one-way delay with jitter that never reorders, seeded random loss, and a
//! cut switch. Its parameters change at run time through commands on stdin; everything it
//! reports is one JSON object per line on stdout. See docs/link-emulator.md.

mod args;
mod control;
mod link;
mod packet;
mod params;
mod shaper;
mod stats;
mod timing;
mod topology;

use anyhow::{Context, Result};
use args::Args;
use clap::Parser;
use link::Link;
use packet::PacketSocket;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use topology::{EMU_ROBOT_SIDE, EMU_SERVER_SIDE, Namespaces, ROBOT_INTERFACE, SERVER_INTERFACE};

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(name) = &args.cleanup {
        return match Namespaces::named(name).delete() {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(err),
        };
    }
    if let Err(err) = args.check_addresses() {
        return fail(err.into());
    }
    match run(args) {
        Ok(never) => match never {},
        Err(err) => fail(err),
    }
}

fn fail(err: anyhow::Error) -> ExitCode {
    eprintln!("dtbridge-linkemu: error: {err:#}");
    ExitCode::FAILURE
}

/// Writes one JSON line to stdout. A reader that went away is no reason to stop forwarding
/// (it may be a benchmark that only wants the link), so write errors are ignored.
fn emit(line: &Value) {
    let mut stdout = std::io::stdout().lock();
    _ = writeln!(stdout, "{line}");
    _ = stdout.flush();
}

/// Ends the process once: the final counters, then the namespaces removed.
struct Exit {
    namespaces: Namespaces,
    link: Arc<Link>,
    finishing: Mutex<()>,
}

impl Exit {
    fn now(&self, reason: &str, failed: bool) -> ! {
        // A second caller (a signal during stdin's end) waits here until the process exits.
        let _only_once = self.finishing.lock();
        emit(&json!({
            "event": "exit",
            "reason": reason,
            "cut": self.link.is_cut(),
            "params": self.link.params().to_json(),
            "counters": self.link.counters_json(),
        }));
        let deleted = self.namespaces.delete();
        if let Err(err) = &deleted {
            eprintln!("dtbridge-linkemu: error: deleting the namespaces: {err:#}");
        }
        std::process::exit(if failed || deleted.is_err() { 1 } else { 0 })
    }
}

fn run(args: Args) -> Result<Infallible> {
    // Before any thread starts, so that every thread inherits the mask and only the signal
    // thread below ever takes SIGINT or SIGTERM, and a signal during setup waits for it.
    let exit_signals = block_exit_signals()?;
    let scheduling = timing::enable_realtime();
    eprintln!("dtbridge-linkemu: scheduling: {scheduling}");

    let namespaces = Namespaces::named(&args.name);
    namespaces.create(args.robot_addr, args.server_addr)?;
    let params = args.link_params();
    let link = Arc::new(Link::new(params, args.seed));
    let exit = Arc::new(Exit {
        namespaces: namespaces.clone(),
        link: link.clone(),
        finishing: Mutex::new(()),
    });

    let sockets = topology::within(&namespaces.emulator, || {
        Ok::<_, std::io::Error>((
            PacketSocket::open(EMU_ROBOT_SIDE)?,
            PacketSocket::open(EMU_SERVER_SIDE)?,
        ))
    });
    let (robot_side, server_side) = match sockets {
        Ok(Ok(sockets)) => sockets,
        Ok(Err(err)) => exit.now(&format!("error: opening packet sockets: {err}"), true),
        Err(err) => exit.now(&format!("error: {err:#}"), true),
    };
    let on_error = {
        let exit = exit.clone();
        move |why: String| exit.now(&format!("error: {why}"), true)
    };
    if let Err(err) = link.start(robot_side, server_side, on_error) {
        exit.now(&format!("error: starting the forwarding threads: {err}"), true);
    }
    {
        let exit = exit.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || exit.now(&wait_for_signal(&exit_signals), false))
            .context("starting the signal thread")?;
    }

    emit(&json!({
        "event": "ready",
        "name": args.name,
        "pid": std::process::id(),
        "namespaces": {
            "robot": namespaces.robot,
            "emulator": namespaces.emulator,
            "server": namespaces.server,
        },
        "interfaces": {
            "robot": ROBOT_INTERFACE,
            "emulator_robot_side": EMU_ROBOT_SIDE,
            "emulator_server_side": EMU_SERVER_SIDE,
            "server": SERVER_INTERFACE,
        },
        "addresses": { "robot": args.robot_addr.to_string(), "server": args.server_addr.to_string() },
        "robot_ip": args.robot_addr.address.to_string(),
        "server_ip": args.server_addr.address.to_string(),
        "profile": args.profile.name(),
        "seed": args.seed,
        "scheduling": scheduling,
        "params": params.to_json(),
    }));

    // Bounded by the input: one command a line until stdin closes.
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let line = line.trim();
        if !line.is_empty() {
            emit(&control::execute(line, &link));
        }
    }
    exit.now("stdin closed", false)
}

const EXIT_SIGNALS: [(libc::c_int, &str); 3] =
    [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM"), (libc::SIGHUP, "SIGHUP")];

/// Blocks the signals that end the emulator in the calling thread (and so in every thread it
/// starts afterwards); they are taken by [`wait_for_signal`].
fn block_exit_signals() -> Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; the signal numbers are valid.
    let rc = unsafe {
        libc::sigemptyset(&mut set);
        for (signal, _) in EXIT_SIGNALS {
            libc::sigaddset(&mut set, signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc)).context("blocking SIGINT and SIGTERM");
    }
    Ok(set)
}

/// Waits for one of the blocked exit signals; its name.
fn wait_for_signal(set: &libc::sigset_t) -> String {
    let mut signal = 0;
    // SAFETY: `set` is a valid, initialised sigset_t and `signal` a valid int to write.
    if unsafe { libc::sigwait(set, &mut signal) } != 0 {
        return "error: sigwait failed".into();
    }
    EXIT_SIGNALS
        .iter()
        .find(|(number, _)| *number == signal)
        .map_or_else(|| format!("signal {signal}"), |(_, name)| (*name).to_owned())
}
