#!/usr/bin/env python3
"""`scripts/bench.sh view`: what the live view costs the operator, and what its clients get.

Per run, three configurations alternate (--clients, default 0,1,4), each with a fresh
livekit-server on 127.0.0.1 (no network namespace: dtbridge reaches it through the server's
loopback candidate):

- robot: `dtbridge run -c config/bench-link.toml` (the synthetic RealSense-like camera:
  depth 848x480 zstd 1 and color 1280x720 JPEG q80 at 30 fps, both camera infos, IMU 200 Hz,
  tf 100 Hz, odom 50 Hz);
- operator: `dtbridge record --view 127.0.0.1:0` in the robot's room, recording to MCAP and
  serving the live view (a Foxglove WebSocket server);
- N Foxglove clients (tests/peers/node/foxglove_client.mjs --subscribe '*' --no-decode),
  connected before the robot joins. 0 clients is the anchor: recording (and the view's own
  per-frame work) with nobody watching.

After a 3 s warm-up from the robot's "joined room", a window of --seconds:

- operator CPU and robot CPU: utime + stime from /proc/<pid>/stat over the window, % of one
  core; the operator's also as a ratio to the anchor's of the same run;
- recorded: the frames the recorder wrote per topic with a log time in the window (read with
  the `mcap` library), which should not change with the number of clients;
- per client and topic, the messages with a log time in the window: fps, delivered % (of the
  recorded frames of that topic in the window), latency p50/p99 = the client's receive wall
  clock (recv_ns) minus the message's log time (the operator's LiveKit receive time, the
  same clock): what the view adds, from the frame leaving LiveKit to Node having it. With
  several clients the table shows their mean fps, the lowest delivered % and the latency
  percentiles of all their messages together; the JSON (--json) has each client.

Medians over --runs. Needs the dtbridge release binary, livekit-server, node and the installed
Foxglove client, and the venv of scripts/setup-python.sh (`mcap`); bench.sh sets all of it up.
"""

import argparse
import json
import re
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

from mcap.reader import make_reader

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ROBOT_CONFIG = ROOT / "config" / "bench-link.toml"
WARMUP_S = 3.0
# In-flight messages of the window's last frames reach the clients within this time after it.
DRAIN_S = 1.0
API_KEY, API_SECRET = "devkey", "dtbridge-bench-secret-0123456789abcdef"
OPERATOR_TOML = """[livekit]
room = "{room}"
identity = "operator"

[record]
output_dir = "{out}"
"""
# As scripts/run-livekit-server.sh (server defaults, data blobs on), on 127.0.0.1 only with its
# loopback candidate, and on ports picked free.
SERVER_YAML = """port: {port}
bind_addresses: ["127.0.0.1"]
rtc:
  tcp_port: {tcp_port}
  udp_port: {udp_port}
  use_external_ip: false
  node_ip: 127.0.0.1
  enable_loopback_candidate: true
keys:
  {key}: {secret}
enable_participant_data_blob: true
logging:
  level: warn
"""


class BenchError(Exception):
    """A prerequisite is missing or a process misbehaved; the message says what to do."""


class Process:
    """A child whose stdout and stderr lines are collected as they come (so pipes never fill),
    and whose lines can be waited for."""

    # Every child started, so a failed run can end them all.
    started = []

    def __init__(self, name, argv, env=None, stdin=False):
        self.name = name
        self.proc = subprocess.Popen(
            [str(a) for a in argv], env=env,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        Process.started.append(self)
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

    def snapshot(self, stream):
        with self.cond:
            return [l for l in self.lines[stream] if l is not None]

    def send(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def close_stdin(self):
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

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
        if self in Process.started:
            Process.started.remove(self)
        return self.proc.returncode


def end_children():
    """Ends the children still running (after a failure): clients first, then the robot and
    the recorder with SIGINT (so the MCAP file is finished), the server last."""
    order = {"client": 0, "run": 1, "record": 2, "livekit-server": 3}
    for process in sorted(Process.started, key=lambda p: order.get(p.name.split()[0], 0)):
        if process.proc.poll() is None:
            process.close_stdin()
            kind = process.name.split()[0]
            process.stop(signal.SIGINT if kind in ("run", "record") else signal.SIGTERM,
                         timeout=15)
    Process.started.clear()


def cpu_seconds(pid):
    """utime + stime of a process, all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values, q):
    values = sorted(values)
    return values[round((len(values) - 1) * q)] if values else float("nan")


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_prerequisites(args):
    """Everything the bench needs, each missing piece with what to do about it."""
    missing = []
    for flag, path, hint in (
        ("--dtbridge", args.dtbridge, "cargo build --release --bin dtbridge"),
        ("--server", args.server, "bash scripts/setup-livekit-server.sh"),
    ):
        if not (path and os.access(path, os.X_OK)):
            missing.append(f"{flag} {path or '(not given)'} is not an executable: {hint}")
    if not (args.client and Path(args.client).is_file()):
        missing.append(f"--client {args.client or '(not given)'} is not a file: "
                       "bash scripts/setup-node.sh")
    if shutil.which(args.node) is None:
        missing.append(f"`{args.node}` (node >= 18) not found: apt-get install nodejs npm")
    if missing:
        raise BenchError("cannot run the view benchmark:\n  - " + "\n  - ".join(missing)
                         + "\n(scripts/bench.sh view sets all of this up)")


class Server:
    """A livekit-server on 127.0.0.1, on free ports, its config in `work`."""

    def __init__(self, binary, work):
        self.port = free_port()
        config = work / "livekit.yaml"
        config.write_text(SERVER_YAML.format(
            port=self.port, tcp_port=free_port(), udp_port=free_port(socket.SOCK_DGRAM),
            key=API_KEY, secret=API_SECRET))
        self.process = Process("livekit-server", [binary, "--config", config])
        # The server says nothing at warn level when it is up: it is up when it accepts a
        # connection.
        for _ in range(600):
            if self.process.proc.poll() is not None:
                raise BenchError(f"livekit-server exited:\n{self.process.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise BenchError(f"livekit-server did not listen within 30 s:\n{self.process.log()}")

    def env(self):
        return dict(os.environ, LIVEKIT_URL=f"ws://127.0.0.1:{self.port}",
                    LIVEKIT_API_KEY=API_KEY, LIVEKIT_API_SECRET=API_SECRET,
                    RUST_LOG="dtbridge=info,warn")

    def close(self):
        self.process.stop(signal.SIGTERM)


# --- MCAP ---------------------------------------------------------------------------------

def read_log_times(out):
    """Per topic, the log times (ns) of the messages in the MCAP files under `out`."""
    files = sorted(Path(out).glob("*.mcap"))
    if not files:
        raise BenchError(f"the recorder wrote no MCAP file in {out}")
    times = {}
    for file in files:
        with open(file, "rb") as f:
            for _schema, channel, message in make_reader(f).iter_messages():
                times.setdefault(channel.topic, []).append(message.log_time)
    return {topic: sorted(t) for topic, t in times.items()}


# --- one configuration ---------------------------------------------------------------------

def client_messages(client):
    """The client's message lines: (topic, log_time_ns, recv_ns, size)."""
    out = []
    for line in client.snapshot("stdout"):
        if not line.startswith('{"event":"message"'):
            continue
        m = json.loads(line)
        out.append((m["topic"], int(m["log_time_ns"]), int(m["recv_ns"]), m.get("size", 0)))
    return out


def client_metrics(messages, window, recorded):
    """Per topic, one client's numbers over the window (t0, t1) in ns."""
    t0, t1 = window
    seconds = (t1 - t0) / 1e9
    per_topic = {}
    for topic, log_time, recv, size in messages:
        if t0 <= log_time < t1:
            per_topic.setdefault(topic, []).append(((recv - log_time) / 1e6, size))
    out = {}
    for topic in sorted(set(recorded) | set(per_topic)):
        got = per_topic.get(topic, [])
        latencies = [l for l, _ in got]
        written = recorded.get(topic, 0)
        out[topic] = {
            "messages": len(got),
            "fps": len(got) / seconds,
            "delivered_pct": 100.0 * len(got) / written if written else None,
            "p50_ms": percentile(latencies, 0.5) if got else None,
            "p99_ms": percentile(latencies, 0.99) if got else None,
            "bytes": statistics.mean(s for _, s in got) if got else None,
            "latencies_ms": latencies,
        }
    return out


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def one_config(args, room, clients, run):
    work = Path(tempfile.mkdtemp(prefix=f"bench-view-{clients}-"))
    try:
        server = Server(args.server, work)
        env = server.env()
        out = work / "out"
        operator = work / "operator.toml"
        operator.write_text(OPERATOR_TOML.format(room=room, out=out))
        record_summary = work / "record-summary.json"
        recorder = Process("record", [
            args.dtbridge, "record", "--summary-json", record_summary, "-c", operator,
            "--view", "127.0.0.1:0"], env=env)
        line = recorder.wait_line("stderr", lambda l: "live view on ws://" in l, 60,
                                  "'live view on ws://...'")
        found = re.search(r"live view on ws://(\S+):(\d+):", line)
        if not found:
            raise BenchError(f"no port in the recorder's line {line!r}")
        port = int(found.group(2))
        recorder.wait_line("stderr", lambda l: "joined room" in l, 60, "'joined room'")
        viewers = []
        for i in range(clients):
            viewers.append(Process(f"client {i}", [
                args.node, args.client, "--url", f"ws://127.0.0.1:{port}", "--subscribe", "*",
                "--seconds", str(int(WARMUP_S + args.seconds + DRAIN_S + 120)), "--no-decode"],
                stdin=True))
        for viewer in viewers:
            viewer.wait_line("stdout", lambda l: '"event":"open"' in l, 60, "its open line")
        run_summary = work / "run-summary.json"
        robot = Process("run", [args.dtbridge, "run", "--summary-json", run_summary,
                                "-c", ROBOT_CONFIG], env=env)
        robot.wait_line("stderr", lambda l: "joined room" in l, 60, "'joined room'")
        time.sleep(WARMUP_S)
        for viewer in viewers:
            viewer.wait_line("stdout", lambda l: l.startswith('{"event":"message"'), 60,
                             "a message after the warm-up")

        # The window.
        t0, m0 = time.time_ns(), time.monotonic()
        op0, robot0 = cpu_seconds(recorder.proc.pid), cpu_seconds(robot.proc.pid)
        time.sleep(args.seconds)
        op1, robot1 = cpu_seconds(recorder.proc.pid), cpu_seconds(robot.proc.pid)
        t1, m1 = time.time_ns(), time.monotonic()
        wall = m1 - m0

        time.sleep(DRAIN_S)
        for viewer in viewers:
            viewer.close_stdin()  # it leaves
        for viewer in viewers:
            viewer.stop(signal.SIGTERM, timeout=10, grace=10)
        robot_rc = robot.stop(signal.SIGINT)
        record_rc = recorder.stop(signal.SIGINT)
        for name, rc, process in (("run", robot_rc, robot), ("record", record_rc, recorder)):
            if rc != 0:
                print(f"bench view: dtbridge {name} exited with {rc}:\n{process.log(15)}",
                      file=sys.stderr)
        server.close()

        log_times = read_log_times(out)
        recorded = {topic: sum(1 for t in times if t0 <= t < t1)
                    for topic, times in log_times.items()}
        per_client = [client_metrics(client_messages(v), (t0, t1), recorded) for v in viewers]
        for i, metrics in enumerate(per_client):
            silent = [t for t, m in metrics.items() if m["messages"] == 0]
            if silent:
                print(f"bench view: {clients} clients, run {run}: client {i} got nothing of "
                      f"{', '.join(silent)} in the window", file=sys.stderr)
        summary = read_json(record_summary) or {}
        # The operator's own measure: LiveKit frame to WebSocket hand-off, per channel.
        added = {c["topic"]: c.get("send_latency_ms") or [None, None]
                 for c in summary.get("view", [])}
        topics = {}
        for topic, written in recorded.items():
            mine = [c[topic] for c in per_client if topic in c]
            pooled = [l for m in mine for l in m["latencies_ms"]]
            sizes = [m["bytes"] for m in mine if m["bytes"] is not None]
            topics[topic] = {
                "recorded": written,
                "recorded_fps": written / ((t1 - t0) / 1e9),
                "fps": statistics.mean(m["fps"] for m in mine) if mine else None,
                "delivered_pct": min((m["delivered_pct"] for m in mine
                                      if m["delivered_pct"] is not None), default=None),
                "p50_ms": percentile(pooled, 0.5) if pooled else None,
                "p99_ms": percentile(pooled, 0.99) if pooled else None,
                "bytes": statistics.mean(sizes) if sizes else None,
                "added_p50_ms": added.get(topic, [None, None])[0],
                "added_p99_ms": added.get(topic, [None, None])[1],
            }
        for metrics in per_client:
            for m in metrics.values():
                del m["latencies_ms"]
        return {
            "clients": clients, "run": run, "window_s": wall,
            "operator_cpu_pct": 100.0 * (op1 - op0) / wall,
            "robot_cpu_pct": 100.0 * (robot1 - robot0) / wall,
            "dropped_behind": summary.get("dropped_behind"),
            "topics": topics,
            "per_client": per_client,
            "record_summary": summary,
            "run_summary": read_json(run_summary),
        }
    finally:
        end_children()
        shutil.rmtree(work, ignore_errors=True)


# --- medians and the table -----------------------------------------------------------------

def med(values):
    values = [v for v in values if v is not None and v == v]
    return statistics.median(values) if values else None


def summarize(results, configs):
    """Medians over the runs, per configuration; CPU ratios against the anchor (the first
    configuration) of the same run."""
    anchor = configs[0]
    by_run = {}
    for r in results:
        by_run.setdefault(r["run"], {})[r["clients"]] = r
    out = {}
    for clients in configs:
        runs = [r for r in results if r["clients"] == clients]
        ratios = [by_run[r["run"]][clients]["operator_cpu_pct"]
                  / by_run[r["run"]][anchor]["operator_cpu_pct"]
                  for r in runs if by_run[r["run"]].get(anchor)
                  and by_run[r["run"]][anchor]["operator_cpu_pct"] > 0]
        topics = sorted({t for r in runs for t in r["topics"]})
        out[clients] = {
            "runs": len(runs),
            "window_s": med([r["window_s"] for r in runs]),
            "operator_cpu_pct": med([r["operator_cpu_pct"] for r in runs]),
            "operator_cpu_ratio": med(ratios),
            "robot_cpu_pct": med([r["robot_cpu_pct"] for r in runs]),
            "dropped_behind": med([r["dropped_behind"] for r in runs]),
            "topics": {t: {k: med([r["topics"][t][k] for r in runs if t in r["topics"]])
                           for k in ("recorded", "recorded_fps", "fps", "delivered_pct",
                                     "p50_ms", "p99_ms", "bytes", "added_p50_ms",
                                     "added_p99_ms")}
                       for t in topics},
        }
    return out


def fmt(value, decimals=1):
    return "-" if value is None else f"{value:.{decimals}f}"


def label(clients, anchor):
    name = f"{clients} client{'' if clients == 1 else 's'}"
    return name + (" (anchor)" if clients == anchor else "")


def markdown(summary, configs, args, load):
    anchor = configs[0]
    watched = [c for c in configs if c > 0]
    runs = summary[anchor]["runs"]
    head = (f"### Live view: `dtbridge record --view` of `{ROBOT_CONFIG.relative_to(ROOT)}`, "
            f"{fmt(args.seconds, 0)} s windows after a {fmt(WARMUP_S, 0)} s warm-up "
            f"(medians of {runs} run{'' if runs == 1 else 's'}; load average at start "
            f"{load[0]:.2f})\n\n")
    rows = ["| | " + " | ".join(label(c, anchor) for c in configs) + " |",
            "|---" * (len(configs) + 1) + "|"]

    def row(name, cells):
        rows.append(f"| {name} | " + " | ".join(cells) + " |")

    row("operator CPU, % of one core", [
        fmt(summary[c]["operator_cpu_pct"], 0)
        + ("" if c == anchor else f" ({fmt(summary[c]['operator_cpu_ratio'], 2)}x)")
        for c in configs])
    row("robot CPU, % of one core", [fmt(summary[c]["robot_cpu_pct"], 0) for c in configs])
    row("recorder frames dropped (behind)", [fmt(summary[c]["dropped_behind"], 0)
                                             for c in configs])
    table1 = "\n".join(rows)

    slash = " / ".join
    cl = slash(str(c) for c in watched)
    rows = [f"| topic | KB/msg | recorded frames {slash(str(c) for c in configs)} clients "
            f"| client fps {cl} | delivered % {cl} | p50 ms {cl} | p99 ms {cl} "
            f"| added p50 ms {cl} | added p99 ms {cl} |",
            "|---|---|---|---|---|---|---|---|---|"]
    topics = sorted({t for c in configs for t in summary[c]["topics"]})
    for topic in topics:
        get = lambda c, k: summary[c]["topics"].get(topic, {}).get(k)
        size = next((get(c, "bytes") for c in watched if get(c, "bytes")), None)
        rows.append(
            f"| {topic} | {fmt(size / 1e3 if size else None, 1)} "
            f"| {slash(fmt(get(c, 'recorded'), 0) for c in configs)} "
            f"| {slash(fmt(get(c, 'fps')) for c in watched)} "
            f"| {slash(fmt(get(c, 'delivered_pct')) for c in watched)} "
            f"| {slash(fmt(get(c, 'p50_ms'), 2) for c in watched)} "
            f"| {slash(fmt(get(c, 'p99_ms'), 2) for c in watched)} "
            f"| {slash(fmt(get(c, 'added_p50_ms'), 2) for c in watched)} "
            f"| {slash(fmt(get(c, 'added_p99_ms'), 2) for c in watched)} |")
    notes = ("\nKB/msg: as the clients get it (depth decompressed); client fps: mean over the "
             "clients; delivered %: the lowest client's messages as % of the frames recorded in "
             "the window; latency: the client's receive time minus the operator's LiveKit "
             "receive time (log time), all clients' messages together; added: what the "
             "operator measures itself, from the frame's arrival from LiveKit to its hand-off "
             "to the WebSocket server (decompression included), over the whole run.\n")
    return head + table1 + "\n\n" + "\n".join(rows) + "\n" + notes


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", default="0,1,4",
                        help="client counts, alternated in each run; the first is the anchor "
                             "(default 0,1,4)")
    parser.add_argument("--json", type=Path, help="write every run and the medians here")
    parser.add_argument("--dtbridge", required=True)
    parser.add_argument("--server", required=True, help="livekit-server binary")
    parser.add_argument("--client", required=True,
                        help="the installed foxglove_client.mjs (scripts/setup-node.sh)")
    parser.add_argument("--node", default="node")
    args = parser.parse_args()
    try:
        args.configs = [int(c) for c in args.clients.split(",") if c.strip() != ""]
    except ValueError:
        parser.error(f"--clients: not a list of numbers: {args.clients}")
    if not args.configs or min(args.configs) < 0 or len(set(args.configs)) != len(args.configs):
        parser.error("--clients: distinct counts >= 0, e.g. 0,1,4")
    if args.runs < 1 or not args.seconds > 0:
        parser.error("--runs must be >= 1 and --seconds > 0")
    return args


def main():
    args = parse_args()
    # SIGTERM ends the bench like Ctrl-C: the children are ended on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load = os.getloadavg()
    results = []
    try:
        check_prerequisites(args)
        room = tomllib.loads(ROBOT_CONFIG.read_text())["livekit"]["room"]
        for run in range(args.runs):
            for clients in args.configs:
                result = one_config(args, room, clients, run)
                print(f"<!-- {clients} clients run {run}: "
                      f"{json.dumps({k: v for k, v in result.items() if 'summary' not in k})} -->",
                      flush=True)
                results.append(result)
    except BenchError as err:
        print(f"bench view: {err}", file=sys.stderr)
        return 1
    finally:
        end_children()
    summary = summarize(results, args.configs)
    print(markdown(summary, args.configs, args, load), flush=True)
    if args.json:
        args.json.write_text(json.dumps(
            {"runs": results, "medians": {str(c): s for c, s in summary.items()}}, indent=1))
        print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
