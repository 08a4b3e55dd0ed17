#!/usr/bin/env python3
"""`scripts/bench.sh link --profile P`: a RealSense-like robot through an emulated link.

Per profile and run, `dtbridge-linkemu --profile P` joins a robot namespace and a server
namespace through the emulated link (docs/link-emulator.md); livekit-server and
`dtbridge record` run in the server namespace. Two phases follow, each recorded to its own
MCAP file by `dtbridge record`, the same measuring instrument for both:

1. dtbridge: `dtbridge run -c config/bench-link.toml` in the robot namespace (the synthetic
   camera: depth 848x480 zstd 1, color 1280x720 JPEG q80, 30 fps, both camera infos, imu
   200 Hz, tf 100 Hz, odom 50 Hz) for --seconds, then SIGINT; its summary gives the frames
   each track produced (sent + dropped).
2. Python SDK (the anchor): one participant (`lk_peer.py bench-streams`) in the robot
   namespace publishes the same tracks at the same rates, with the frame sizes dtbridge's
   tracks had on the wire in phase 1 of the same run, for the same time.

Per track: delivered % (recorded / produced), fps recorded, latency p50/p99 (the recorder's
receive time minus the frame's timestamp, minus the profile's one-way delay; of the frames
sampled from 2 s after the phase's first one on, the JSON's p99_all_ms of all), goodput
(recorded frames x wire size); per phase: the sum of the goodput as % of the uplink's rate and
the robot process's CPU (utime + stime from /proc/<pid>/stat over its run, % of one core).
Medians over --runs; the JSON (--json) holds every run.

Needs root (network namespaces), `ip` and `ethtool`, the dtbridge and dtbridge-linkemu
binaries, livekit-server, and this venv (livekit, mcap). bench.sh checks and builds them.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mcap.reader import make_reader

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PROFILES = ["lan", "wifi", "lte", "satellite", "congested"]
PORT = 7880
API_KEY, API_SECRET = "devkey", "dtbridge-bench-secret-0123456789abcdef"
NS = "/camera/camera"
# The tracks of ROBOT_CONFIG: name -> (rate in Hz, route is zstd-compressed). The recorder
# stores `+zstd` frames decompressed, so their wire size comes from `dtbridge run`'s summary
# (MB out / frames).
TRACKS = {
    f"{NS}/depth/image_rect_raw": (30, True),
    f"{NS}/depth/camera_info": (30, False),
    f"{NS}/color/image_raw": (30, False),
    f"{NS}/color/camera_info": (30, False),
    f"{NS}/imu": (200, False),
    "/tf": (100, False),
    "/odom": (50, False),
}
ROBOT_CONFIG = ROOT / "config" / "bench-link.toml"
OPERATOR_TOML = """[livekit]
room = "{room}"
identity = "operator"

[record]
output_dir = "{out}"
"""


class BenchError(Exception):
    """A prerequisite is missing or a process misbehaved; the message says what to do."""


class Process:
    """A child whose stdout and stderr lines are collected as they come (so pipes never fill),
    and whose lines can be waited for."""

    # Every child started, so a failed run can end them before their namespaces go away.
    started = []

    def __init__(self, name, argv, env=None, stdin=False):
        Process.started.append(self)
        self.name = name
        self.proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines = {"stdout": [], "stderr": []}
        self.cond = threading.Condition()
        for stream in ("stdout", "stderr"):
            threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in getattr(self.proc, stream):
            with self.cond:
                self.lines[stream].append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines[stream].append(None)  # EOF
            self.cond.notify_all()

    def wait_line(self, stream, predicate, timeout, what, count=1):
        """The `count`th line of `stream` for which predicate holds; an error naming `what`
        when the process ends or `timeout` passes first."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                lines = self.lines[stream]
                for line in lines[seen:]:
                    if line is None:
                        raise BenchError(f"{self.name} ended before {what}:\n{self.log()}")
                    if predicate(line):
                        count -= 1
                        if count == 0:
                            return line
                seen = len(lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"{self.name}: no {what} within {timeout:.0f} s:\n{self.log()}")
                self.cond.wait(left)

    def log(self, tail=40):
        with self.cond:
            lines = [l for s in ("stdout", "stderr") for l in self.lines[s] if l is not None]
        return "\n".join(f"  {self.name}: {l}" for l in lines[-tail:])

    def text(self, stream):
        with self.cond:
            return "\n".join(l for l in self.lines[stream] if l is not None)

    def send(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGINT, timeout=30, grace=0):
        """Waits up to `grace` seconds for the process to end by itself, then signals it and
        waits for it and its output; SIGKILL after `timeout`."""
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        self.send(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with self.cond:
            self.cond.wait_for(lambda: all(v and v[-1] is None for v in self.lines.values()), 10)
        return self.proc.returncode


def end_children():
    """Ends the children still running (after a failure), the emulator last: its namespaces
    must outlive what runs in them."""
    for process in sorted(Process.started, key=lambda p: p.name == "linkemu"):
        if process.proc.poll() is None:
            process.stop(signal.SIGTERM, timeout=10)
    Process.started.clear()


def cpu_seconds(pid):
    """utime + stime of a process, all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values, q):
    values = sorted(values)
    return values[round((len(values) - 1) * q)] if values else float("nan")


def check_prerequisites(args):
    """Everything the bench needs, each missing piece with what to do about it."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root: the link emulator creates network namespaces; run "
                       "`sudo -E bash scripts/bench.sh link ...` (or as root in CI)")
    for tool, package in (("ip", "iproute2"), ("ethtool", "ethtool")):
        if shutil.which(tool) is None:
            missing.append(f"`{tool}`: apt-get install {package}")
    for flag, path, hint in (
        ("--dtbridge", args.dtbridge, "cargo build --release --bin dtbridge"),
        ("--linkemu", args.linkemu, "cargo build --release --bin dtbridge-linkemu"),
        ("--server", args.server, "bash scripts/setup-livekit-server.sh"),
    ):
        if not (path and os.access(path, os.X_OK)):
            missing.append(f"{flag} {path or '(not given)'} is not an executable: {hint}")
    if missing:
        raise BenchError("cannot run the link benchmark:\n  - " + "\n  - ".join(missing)
                         + "\n(scripts/bench.sh link sets all of this up)")


class Link:
    """A running dtbridge-linkemu and livekit-server in its server namespace."""

    def __init__(self, args, profile, work):
        self.emu = Process("linkemu", [args.linkemu, "--name", args.name, "--profile", profile],
                           stdin=True)
        ready = json.loads(self.emu.wait_line(
            "stdout", lambda l: '"event":"ready"' in l.replace(" ", ""), 60, "its ready line"))
        self.ready = ready
        self.robot_ns = ready["namespaces"]["robot"]
        self.server_ns = ready["namespaces"]["server"]
        self.server_ip = ready["server_ip"]
        self.delay_ms = ready["params"]["up"]["delay_ms"]
        self.up_rate_bps = ready["params"]["up"]["rate_bps"]
        self.url = f"ws://{self.server_ip}:{PORT}"
        env = dict(os.environ, DTBRIDGE_TEST_IP=self.server_ip, LIVEKIT_API_KEY=API_KEY,
                   LIVEKIT_API_SECRET=API_SECRET, TMPDIR=str(work))
        self.server = Process("livekit-server", [
            "ip", "netns", "exec", self.server_ns, "bash",
            str(ROOT / "scripts" / "run-livekit-server.sh"), args.server, str(PORT)], env=env)
        # The server says nothing at warn level when it is up: it is up when it accepts a
        # connection (checked from inside its namespace; the host has no route there).
        probe = f"exec 3<>/dev/tcp/{self.server_ip}/{PORT}"
        for _ in range(600):
            if self.server.proc.poll() is not None:
                raise BenchError(f"livekit-server exited:\n{self.server.log()}")
            if subprocess.run(["ip", "netns", "exec", self.server_ns, "bash", "-c", probe],
                              stderr=subprocess.DEVNULL).returncode == 0:
                break
            time.sleep(0.05)
        else:
            raise BenchError(f"livekit-server did not listen within 30 s:\n{self.server.log()}")

    def env(self, room):
        return dict(os.environ, LIVEKIT_URL=self.url, LIVEKIT_API_KEY=API_KEY,
                    LIVEKIT_API_SECRET=API_SECRET, LIVEKIT_ROOM=room,
                    RUST_LOG="dtbridge=info,warn")

    def close(self):
        """Stops the server, then the emulator; its exit line has the link's counters."""
        self.server.stop(signal.SIGTERM)
        if self.emu.proc.poll() is None:
            self.emu.proc.stdin.close()
        self.emu.stop(signal.SIGTERM)
        for line in reversed(self.emu.text("stdout").splitlines()):
            if '"exit"' in line:
                return json.loads(line).get("counters")
        return None


def start_recorder(link, work, phase, room):
    out = work / f"{phase}-out"
    config = work / f"{phase}-operator.toml"
    config.write_text(OPERATOR_TOML.format(room=room, out=out))
    recorder = Process(f"record ({phase})", [
        "ip", "netns", "exec", link.server_ns, ARGS.dtbridge, "record", "-c", str(config)],
        env=link.env(room))
    recorder.wait_line("stderr", lambda l: "joined room" in l, 60, "'joined room'")
    return recorder, out


def read_recording(out):
    """Per track: [(log_time_ns, publish_time_ns, stored bytes)]."""
    frames = {}
    for file in sorted(Path(out).glob("*.mcap")):
        with open(file, "rb") as stream:
            for _, channel, message in make_reader(stream).iter_messages():
                frames.setdefault(channel.topic, []).append(
                    (message.log_time, message.publish_time, len(message.data)))
    return frames


def run_summary(path, stderr):
    """`dtbridge run --summary-json`'s summary: elapsed seconds and per track (frames sent, MB
    out, of those lost on the network, dropped, and the counters by reason)."""
    try:
        summary = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise BenchError(f"no summary from dtbridge run ({err}):\n" + stderr[-3000:])
    tracks = {}
    for t in summary["tracks"]:
        reasons = ", ".join(f"{k} {t[k]}" for k in ("replaced", "shed", "stale", "refused"))
        tracks[t["track"]] = {"sent": t["frames"], "mb_out": t["bytes_out"] / 1e6,
                              "dropped": t["dropped"],
                              "line": f"sent {t['frames']}, lost {t['lost']} on the network, "
                                      f"dropped {t['dropped']} ({reasons})"}
    return summary["elapsed_s"], tracks


# Latency percentiles leave out the frames sampled in the phase's first seconds: those the
# robot produced while its session and the recorder's subscriptions were still being set
# up waited for them (up to 400 ms for the first IMU samples), which says nothing about the
# link. p99_all_ms keeps them.
WARM_UP_NS = 2_000_000_000


def measure(frames, produced, wire_bytes, seconds, delay_ms):
    """Per-track numbers from the recorded frames."""
    out = {}
    first_sample = min((pub for got in frames.values() for _, pub, _ in got), default=0)
    for track, made in produced.items():
        got = frames.get(track, [])
        timed = [(pub, (log - pub) / 1e6 - delay_ms) for log, pub, _ in got]
        latencies = [latency for pub, latency in timed if pub >= first_sample + WARM_UP_NS]
        every_latency = [latency for _, latency in timed]
        out[track] = {
            "produced": made,
            "recorded": len(got),
            "delivered_pct": 100.0 * len(got) / made if made else float("nan"),
            "fps": len(got) / seconds,
            "p50_ms": percentile(latencies, 0.5),
            "p99_ms": percentile(latencies, 0.99),
            "p99_all_ms": percentile(every_latency, 0.99),
            "frame_bytes": wire_bytes[track],
            "goodput_mbit": len(got) * wire_bytes[track] * 8 / seconds / 1e6,
        }
    return out


def dtbridge_phase(link, work, run):
    room = f"link-dtbridge-{run}"
    recorder, out = start_recorder(link, work, "dtbridge", room)
    summary_path = work / f"run-summary-{run}.json"
    robot = Process("run", [
        "ip", "netns", "exec", link.robot_ns, ARGS.dtbridge, "run", "--summary-json",
        str(summary_path), "-c", str(ROBOT_CONFIG)],
        env=dict(link.env(room), DTBRIDGE_LIVEKIT__ROOM=room))
    robot.wait_line("stderr", lambda l: "joined room" in l, 60, "'joined room'")
    time.sleep(ARGS.seconds)  # the measurement itself: the robot streams for this long
    cpu = cpu_seconds(robot.proc.pid)
    robot.stop(signal.SIGINT)
    elapsed, summary = run_summary(summary_path, robot.text("stderr"))
    recorder.stop(signal.SIGINT)
    frames = read_recording(out)
    wire = {}
    for track, (_, zstd) in TRACKS.items():
        s = summary.get(track)
        if s is None:
            raise BenchError(f"dtbridge run's summary has no track {track}")
        stored = [size for _, _, size in frames.get(track, [])]
        if zstd or not stored:
            wire[track] = s["mb_out"] * 1e6 / max(s["sent"], 1)
        else:
            wire[track] = statistics.mean(stored)
    produced = {t: s["sent"] + s["dropped"] for t, s in summary.items() if t in TRACKS}
    tracks = measure(frames, produced, wire, elapsed, link.delay_ms)
    for track, s in summary.items():
        if track in tracks:
            tracks[track]["summary"] = s["line"]
    return {"seconds": elapsed, "cpu_pct": 100.0 * cpu / elapsed, "tracks": tracks}


def python_phase(link, work, run, wire):
    room = f"link-python-{run}"
    recorder, out = start_recorder(link, work, "python", room)
    streams = []
    for track, (hz, _) in TRACKS.items():
        streams += ["--stream", f"{track}:{max(1, round(wire[track]))}:{hz}"]
    peer = Process("python publisher", [
        "ip", "netns", "exec", link.robot_ns, ARGS.python, str(HERE / "lk_peer.py"),
        "--room", room, "--identity", "robot", "bench-streams", "--duration",
        str(ARGS.seconds), *streams], env=link.env(room), stdin=True)
    peer.wait_line("stdout", lambda l: '"published"' in l, 60, "all its tracks published",
                   count=len(TRACKS))
    peer.proc.stdin.write("start\n")
    peer.proc.stdin.flush()
    done = json.loads(peer.wait_line("stdout", lambda l: '"done"' in l, ARGS.seconds + 60,
                                     "its done line"))
    peer.proc.stdin.write("quit\n")
    peer.proc.stdin.flush()
    peer.stop(signal.SIGTERM, grace=10)
    recorder.stop(signal.SIGINT)
    frames = read_recording(out)
    produced = {t: c["pushed"] + c["dropped"] for t, c in done["tracks"].items()}
    tracks = measure(frames, produced, {t: round(wire[t]) for t in TRACKS}, done["secs"],
                     link.delay_ms)
    return {"seconds": done["secs"], "cpu_pct": 100.0 * done["cpu_secs"] / done["secs"],
            "tracks": tracks}


def totals(phase, up_rate_bps):
    goodput = sum(t["goodput_mbit"] for t in phase["tracks"].values())
    phase["goodput_mbit"] = goodput
    phase["goodput_pct_of_link"] = (100.0 * goodput * 1e6 / up_rate_bps
                                    if up_rate_bps else None)


def one_run(profile, run):
    work = Path(tempfile.mkdtemp(prefix=f"bench-link-{profile}-"))
    try:
        link = Link(ARGS, profile, work)
        try:
            dtb = dtbridge_phase(link, work, run)
            wire = {t: v["frame_bytes"] for t, v in dtb["tracks"].items()}
            py = python_phase(link, work, run, wire)
        finally:
            counters = link.close()
    finally:
        end_children()
    for phase in (dtb, py):
        totals(phase, link.up_rate_bps)
    shutil.rmtree(work, ignore_errors=True)
    return {"profile": profile, "run": run, "link": link.ready["params"],
            "link_counters": counters, "dtbridge": dtb, "python": py}


def med(values):
    values = [v for v in values if v is not None and v == v]
    return statistics.median(values) if values else None


def summarize(profile, runs):
    """Medians over the runs, per side and track."""
    out = {"profile": profile, "runs": len(runs), "link": runs[0]["link"], "sides": {}}
    for side in ("dtbridge", "python"):
        phases = [r[side] for r in runs]
        tracks = {}
        for track in TRACKS:
            per = [p["tracks"][track] for p in phases if track in p["tracks"]]
            tracks[track] = {k: med([t[k] for t in per]) for k in (
                "delivered_pct", "fps", "p50_ms", "p99_ms", "frame_bytes", "goodput_mbit")}
        out["sides"][side] = {
            "tracks": tracks,
            "cpu_pct": med([p["cpu_pct"] for p in phases]),
            "goodput_mbit": med([p["goodput_mbit"] for p in phases]),
            "goodput_pct_of_link": med([p["goodput_pct_of_link"] for p in phases]),
        }
    return out


def fmt(value, decimals=1):
    return "-" if value is None else f"{value:.{decimals}f}"


def markdown(summary):
    link = summary["link"]["up"]
    rate = link["rate_bps"]
    head = (f"### `{summary['profile']}`: up {fmt(rate / 1e6, 0) + ' Mbit/s' if rate else 'unlimited'}"
            f", {link['delay_ms']} ms one way, {link['jitter_ms']} ms jitter, "
            f"{link['loss_percent']}% loss (medians of {summary['runs']} runs)\n\n")
    rows = ["| track | KB/frame | delivered % dtbridge / Python | fps dtbridge / Python "
            "| p50 ms dtbridge / Python | p99 ms dtbridge / Python | delivered dtbridge / Python |",
            "|---|---|---|---|---|---|---|"]
    d, p = summary["sides"]["dtbridge"], summary["sides"]["python"]
    for track in TRACKS:
        a, b = d["tracks"][track], p["tracks"][track]
        ratio = (a["delivered_pct"] / b["delivered_pct"]
                 if a["delivered_pct"] is not None and b["delivered_pct"] else None)
        rows.append(
            f"| {track} | {fmt(a['frame_bytes'] / 1e3 if a['frame_bytes'] else None, 2)} "
            f"| {fmt(a['delivered_pct'])} / {fmt(b['delivered_pct'])} "
            f"| {fmt(a['fps'])} / {fmt(b['fps'])} | {fmt(a['p50_ms'], 0)} / {fmt(b['p50_ms'], 0)} "
            f"| {fmt(a['p99_ms'], 0)} / {fmt(b['p99_ms'], 0)} | {fmt(ratio, 2)} |")
    rows.append(
        f"| all | | | goodput {fmt(d['goodput_mbit'], 2)} / {fmt(p['goodput_mbit'], 2)} Mbit/s "
        f"({fmt(d['goodput_pct_of_link'], 0)}% / {fmt(p['goodput_pct_of_link'], 0)}% of the "
        f"uplink) | robot CPU {fmt(d['cpu_pct'], 0)}% / {fmt(p['cpu_pct'], 0)}% of one core | | |")
    return head + "\n".join(rows) + "\n"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="lte",
                        help=f"one of {', '.join(PROFILES)}, or all (default lte)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", type=Path, help="write every run and the medians here")
    parser.add_argument("--dtbridge", required=True)
    parser.add_argument("--linkemu", required=True)
    parser.add_argument("--server", required=True, help="livekit-server binary")
    parser.add_argument("--python", default=sys.executable,
                        help="the venv python with `livekit` (default: this one)")
    parser.add_argument("--name", default="dtbbench", help="the emulator's namespace prefix")
    args = parser.parse_args()
    if args.profile != "all" and args.profile not in PROFILES:
        parser.error(f"unknown profile '{args.profile}': valid are {', '.join(PROFILES)}, all")
    if args.runs < 1 or not args.seconds > 0:
        parser.error("--runs must be >= 1 and --seconds > 0")
    return args


def main():
    global ARGS
    ARGS = parse_args()
    try:
        check_prerequisites(ARGS)
        profiles = PROFILES if ARGS.profile == "all" else [ARGS.profile]
        results = {p: [] for p in profiles}
        # Profiles alternate within each round, as `bench run` alternates configs.
        for run in range(ARGS.runs):
            for profile in profiles:
                result = one_run(profile, run)
                print(f"<!-- {profile} run {run}: {json.dumps(result)} -->", flush=True)
                results[profile].append(result)
    except BenchError as err:
        print(f"bench link: {err}", file=sys.stderr)
        return 1
    summaries = [summarize(p, runs) for p, runs in results.items()]
    for summary in summaries:
        print(markdown(summary), flush=True)
    if ARGS.json:
        ARGS.json.write_text(json.dumps({"runs": results, "medians": summaries}, indent=1))
        print(f"JSON: {ARGS.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
