#!/usr/bin/env python3
"""rclpy publisher and reference subscriber for `scripts/bench.sh ros2` (bench_ros2.py).

  ros2_bench_peer.py pub small|depth --topics N --hz HZ --warmup S --seconds S
  ros2_bench_peer.py sub small|depth --topics N --seconds S
  ros2_bench_peer.py pub robot [--only TOPIC,...] --seconds S

`small`: N topics /bench/small_<i> of std_msgs/msg/Header at HZ each. `depth`: N topics
/bench/depth_<i> of sensor_msgs/msg/Image, 848x480 16UC1 with camera-like noise, at HZ. All
reliable: keep all on the publisher, keep last 1000 on the anchor (the bridge's default).
Every message's header carries its publish time (stamp) and "<seq>"
(frame_id); messages with seq < warmup*HZ are the warm-up and not measured.
`pub` prints {"sent": n, "measured": m, "seconds": s} (measured window only) when done.
`sub` is the anchor: an rclpy node on the same topics in the same run; it prints
{"received": n, "latency_ms": [...]} for measured messages.
`robot` (for `scripts/bench.sh one-bridge`): what a robot publishes beside its RealSense, for S
seconds: /imu sensor_msgs/Imu 200 Hz, /tf 100 Hz (geometry_msgs/TransformStamped: tf2_msgs
has no wheel), /camera/image sensor_msgs/Image 640x480 rgb8 15 Hz and /points
sensor_msgs/PointCloud2 of 30,000 points (x, y, z, intensity) 10 Hz (--only: some of them);
prints {"sent": {topic: n}} when done. Publish large topics from a process of their own, as
sensor drivers do: a Fast DDS writer of a large reliable message blocks the publishing thread
now and then, for up to seconds here, and every topic of that process waits.
"""

import argparse
import json
import signal
import sys
import time

import numpy as np
import rclpy
from geometry_msgs.msg import TransformStamped
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image, Imu, PointCloud2, PointField
from std_msgs.msg import Header

# Reliable, keep all on the writers (a paced publisher that falls behind catches up in a burst,
# and a keep-last writer would discard the start of it); the anchor keeps what the bridge keeps
# by default (1000).
PUB_QOS = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
SUB_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
WIDTH, HEIGHT = 848, 480


def topics(kind, n):
    return [f"/bench/{kind}_{i}" for i in range(n)]


def depth_frames(count):
    """Smooth depth (0.5-4 m in mm) with per-pixel noise, like a stereo camera's."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = 500 + (x * 3 + y * 2) % 3500
    return [
        (base + rng.integers(-8, 9, size=base.shape)).astype("<u2").tobytes() for _ in range(count)
    ]


def publish(args, node):
    names = topics(args.kind, args.topics)
    msg_type = Header if args.kind == "small" else Image
    pubs = [node.create_publisher(msg_type, t, PUB_QOS) for t in names]
    frames = depth_frames(8) if args.kind == "depth" else None
    # Let the bridge and the anchor find the topics before anything is sent.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and min(p.get_subscription_count() for p in pubs) < 2:
        rclpy.spin_once(node, timeout_sec=0.05)
    warmup = int(args.warmup * args.hz)
    total = warmup + int(args.seconds * args.hz)
    start = time.monotonic()
    measured_start = None
    for seq in range(total):
        due = start + seq / args.hz
        while (now := time.monotonic()) < due:
            time.sleep(min(due - now, 0.0005))
        if seq == warmup:
            measured_start = time.monotonic()
        stamp = node.get_clock().now().to_msg()
        for pub in pubs:
            if frames is None:
                msg = Header(stamp=stamp, frame_id=str(seq))
            else:
                msg = Image(height=HEIGHT, width=WIDTH, encoding="16UC1", step=WIDTH * 2)
                msg.header = Header(stamp=stamp, frame_id=str(seq))
                msg.data = frames[seq % len(frames)]
            pub.publish(msg)
    seconds = time.monotonic() - measured_start
    # Reliable delivery of the tail needs the writers a little longer.
    end = time.monotonic() + 2
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    measured = (total - warmup) * len(pubs)
    json.dump({"sent": total * len(pubs), "measured": measured, "seconds": seconds}, sys.stdout)


def robot_streams(node):
    """(publisher, Hz, messages to cycle through) per topic of the `robot` kind."""
    rng = np.random.default_rng(7)
    imu = Imu()
    imu.header.frame_id = "imu_link"
    imu.linear_acceleration.z = 9.81
    imu.orientation.w = 1.0
    tf = TransformStamped()
    tf.header.frame_id, tf.child_frame_id = "odom", "base_link"
    tf.transform.rotation.w = 1.0
    images = []
    y, x = np.mgrid[0:480, 0:640]
    for k in range(4):
        # A camera-like picture: smooth gradients with sensor noise, not noise alone (which
        # no image encoder meets in practice).
        rgb = np.stack([(x + 8 * k) % 256, (y + 4 * k) % 256, (x + y) // 5 % 256], axis=-1)
        rgb = rgb + rng.integers(-6, 7, size=rgb.shape)
        image = Image(height=480, width=640, encoding="rgb8", step=640 * 3)
        image.header.frame_id = "camera"
        image.data = np.clip(rgb, 0, 255).astype(np.uint8).tobytes()
        images.append(image)
    clouds = []
    for _ in range(4):
        cloud = PointCloud2(height=1, width=30000, is_bigendian=False, point_step=16)
        cloud.header.frame_id = "lidar"
        cloud.row_step = 16 * 30000
        cloud.fields = [
            PointField(name=name, offset=4 * k, datatype=PointField.FLOAT32, count=1)
            for k, name in enumerate(["x", "y", "z", "intensity"])
        ]
        cloud.data = rng.uniform(-20, 20, size=30000 * 4).astype("<f4").tobytes()
        cloud.is_dense = True
        clouds.append(cloud)
    return [
        (node.create_publisher(Imu, "/imu", PUB_QOS), 200, [imu]),
        (node.create_publisher(TransformStamped, "/tf", PUB_QOS), 100, [tf]),
        (node.create_publisher(Image, "/camera/image", PUB_QOS), 15, images),
        (node.create_publisher(PointCloud2, "/points", PUB_QOS), 10, clouds),
    ]


def publish_robot(args, node):
    streams = robot_streams(node)
    if args.only:
        streams = [s for s in streams if s[0].topic_name in args.only.split(",")]
    sent = [0] * len(streams)
    # SIGTERM (bench.sh stopping it) ends the loop; the counts are printed as after --seconds.
    stopped = []
    signal.signal(signal.SIGTERM, lambda *_: stopped.append(True))
    start = time.monotonic()
    end = start + args.seconds
    while (now := time.monotonic()) < end and not stopped:
        # Each stream's next message is due at start + n / Hz; send what is due, oldest first.
        due, i = min((start + sent[i] / hz, i) for i, (_, hz, _) in enumerate(streams))
        if due > now:
            time.sleep(min(due - now, 0.0005))
            continue
        pub, _, messages = streams[i]
        msg = messages[sent[i] % len(messages)]
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        sent[i] += 1
    json.dump({"sent": {pub.topic_name: n for (pub, _, _), n in zip(streams, sent)}}, sys.stdout)


def subscribe(args, node):
    received, latencies = 0, []
    warmup = int(args.warmup * args.hz)

    def on_message(msg):
        nonlocal received
        header = msg if isinstance(msg, Header) else msg.header
        if int(header.frame_id) < warmup:
            return
        now = time.time_ns()
        received += 1
        latencies.append((now - (header.stamp.sec * 10**9 + header.stamp.nanosec)) / 1e6)

    msg_type = Header if args.kind == "small" else Image
    for t in topics(args.kind, args.topics):
        node.create_subscription(msg_type, t, on_message, SUB_QOS)
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.01)
    json.dump({"received": received, "latency_ms": latencies}, sys.stdout)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["pub", "sub"])
    parser.add_argument("kind", choices=["small", "depth", "robot"])
    parser.add_argument("--topics", type=int, default=1)
    parser.add_argument("--hz", type=float, default=1000)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--only", help="robot: publish only these topics (comma-separated)")
    args = parser.parse_args()
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(f"bench_{args.mode}")
    if args.kind == "robot":
        if args.mode != "pub":
            parser.error("the robot kind only publishes")
        publish_robot(args, node)
    else:
        (publish if args.mode == "pub" else subscribe)(args, node)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
