#!/usr/bin/env python3
"""`scripts/bench.sh ros2`: the ros2 source end to end, rclpy publisher -> `dtbridge run` ->
livekit-server -> `dtbridge record` -> MCAP, with an rclpy subscriber on the same topics in the
same run as the anchor (what ROS 2 itself delivers to a node here).

Run by bench.sh inside the network namespace with the server up (LIVEKIT_URL, ...), the ROS 2
environment (scripts/ros2-env.sh) and this venv's `mcap` + `mcap-ros2-support`. Prints a
markdown table: per case, medians over the runs of messages/s and MB/s recorded, loss, latency
p50/p99 (header stamp at publish -> the recorder's receive time), the bridge's CPU, and the
anchor's rate and latency.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

HERE = Path(__file__).resolve().parent
CASES = {
    # name: (kind, topics, hz, route)
    "small: 5 topics x 1 kHz std_msgs/Header": ("small", 5, 1000, ""),
    "depth: 848x480 16UC1 x 30 Hz, zstd 1": (
        "depth", 1, 30, 'compression = "zstd"\nzstd_level = 1\n'),
}


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def one_run(args, case, domain):
    kind, topics, hz, route = CASES[case]
    work = Path(tempfile.mkdtemp(prefix="bench-ros2-"))
    (work / "robot.toml").write_text(
        f'[livekit]\nroom = "bench-ros2"\nidentity = "robot"\n\n'
        f'[[sources]]\ntype = "ros2"\nname = "ros"\ndomain_id = {domain}\n'
        f'topics = ["/bench/**"]\ndiscovery_interval_s = 0.2\n\n'
        f'[[routes]]\ntopic = "/bench/**"\nqueue_depth = 1024\n{route}'
    )
    (work / "operator.toml").write_text(
        '[livekit]\nroom = "bench-ros2"\nidentity = "operator"\n\n[record]\noutput_dir = "out"\n'
    )
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), RUST_LOG="dtbridge=warn")
    peer = [args.ros_python, str(HERE / "ros2_bench_peer.py")]
    common = ["--topics", str(topics), "--hz", str(hz), "--warmup", str(args.warmup)]
    recorder = subprocess.Popen([args.dtbridge, "record", "-c", work / "operator.toml"], env=env,
                                stdout=subprocess.DEVNULL)
    bridge = subprocess.Popen([args.dtbridge, "run", "-c", work / "robot.toml"], env=env,
                              stdout=subprocess.DEVNULL)
    anchor = subprocess.Popen(peer + ["sub", kind, *common, "--seconds",
                                      str(args.warmup + args.seconds + 14)],
                              env=env, stdout=subprocess.PIPE)
    time.sleep(2)
    publisher = subprocess.Popen(peer + ["pub", kind, *common, "--seconds", str(args.seconds)],
                                 env=env, stdout=subprocess.PIPE)
    time.sleep(args.warmup + 1.5)  # the bridge found the topics; the warm-up is under way
    cpu_start, wall_start = cpu_seconds(bridge.pid), time.monotonic()
    sent = json.loads(publisher.communicate(timeout=args.seconds + 60)[0])
    cpu = (cpu_seconds(bridge.pid) - cpu_start) / (time.monotonic() - wall_start)
    time.sleep(1)
    for process in (bridge, recorder):
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    anchor_result = json.loads(anchor.communicate(timeout=60)[0])

    warmup = int(args.warmup * hz)
    latencies, count, size = [], 0, 0
    factory = DecoderFactory()
    decoders = {}
    for file in sorted((work / "out").glob("*.mcap")):
        with open(file, "rb") as stream:
            for schema, channel, message in make_reader(stream).iter_messages():
                key = channel.id
                if key not in decoders:
                    decoders[key] = factory.decoder_for(channel.message_encoding, schema)
                msg = decoders[key](message.data)
                header = msg if hasattr(msg, "frame_id") else msg.header
                if int(header.frame_id) < warmup:
                    continue
                count += 1
                size += len(message.data)
                stamp = header.stamp.sec * 10**9 + header.stamp.nanosec
                latencies.append((message.log_time - stamp) / 1e6)
    seconds = sent["seconds"]
    return {
        "msgs": count / seconds,
        "mbs": size / seconds / 1e6,
        "loss": 1 - count / sent["measured"],
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
        "cpu": cpu,
        "offered": sent["measured"] / seconds,
        "anchor_msgs": anchor_result["received"] / seconds,
        "anchor_loss": 1 - anchor_result["received"] / sent["measured"],
        "anchor_p50": percentile(anchor_result["latency_ms"], 0.5),
        "anchor_p99": percentile(anchor_result["latency_ms"], 0.99),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dtbridge", required=True)
    parser.add_argument("--ros-python", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    args = parser.parse_args()
    print("| case | offered msg/s | recorded msg/s | MB/s | loss | p50 ms | p99 ms | bridge CPU "
          "| anchor (rclpy) msg/s | anchor loss | anchor p50 / p99 ms | recorded / anchor |")
    print("|---" * 12 + "|")
    for i, case in enumerate(CASES):
        runs = []
        for r in range(args.runs):
            result = one_run(args, case, 100 + i * 10 + r)
            print(f"<!-- {case} run {r}: {json.dumps(result)} -->", flush=True)
            runs.append(result)
        m = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
        print(f"| {case} | {m['offered']:.0f} | {m['msgs']:.0f} | {m['mbs']:.2f} "
              f"| {m['loss']:.2%} | {m['p50']:.1f} | {m['p99']:.1f} | {m['cpu']:.0%} "
              f"| {m['anchor_msgs']:.0f} | {m['anchor_loss']:.2%} "
              f"| {m['anchor_p50']:.1f} / {m['anchor_p99']:.1f} "
              f"| {m['msgs'] / m['anchor_msgs']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
