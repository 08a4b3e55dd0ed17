#!/usr/bin/env python3
"""rclpy publishers for tests/ros2.rs: a small robot's ROS 2 graph, on real DDS.

Run with the ROS 2 wheels venv python and scripts/ros2-env.sh's environment (plus the test's
ROS_DOMAIN_ID). Timeline, in seconds from start:
  0   latched /robot_description (std_msgs/String, transient local, published once), one first
      message on each streaming topic, /clock (rosgraph_msgs/Clock: a type the bridge build
      leaves out) and /secret/pose (denied by the bridge's config); prints "ready"
  go  after the line "go" on stdin: streams for --seconds, reliable and keep-all, at
      /chatter String 20 Hz, /imu Imu 200 Hz, /pose PoseStamped 50 Hz,
      /camera/image Image 640x480 rgb8 10 Hz, /camera/color/image_raw Image 640x480 rgb8 5 Hz
  --late-after  /late (String, 10 Hz, 2 s) appears
Then prints one JSON object: {topic: [message, ...]} with every message published, as fields
(nested messages as objects, uint8 arrays as {"len", "sha256"}, other arrays as lists), the
shape tests/peers/read_mcap.py prints decoded messages in.
"""

import argparse
import hashlib
import json
import sys
import time

import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, Imu
from std_msgs.msg import String

WIDTH, HEIGHT = 640, 480
# One row pattern per frame: distinct frames that zstd still shrinks.
PATTERN = bytes(range(256)) * (WIDTH * HEIGHT * 3 // 256)


def plain(value, ros_type=""):
    if hasattr(value, "get_fields_and_field_types"):
        return {
            name: plain(getattr(value, name), t)
            for name, t in value.get_fields_and_field_types().items()
        }
    if ros_type.startswith("sequence<uint8") or ros_type.startswith("uint8["):
        data = bytes(value)
        return {"len": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)) or type(value).__name__ == "array":
        return [plain(v) for v in value]
    return value


def stamp(msg, node):
    msg.header.stamp = node.get_clock().now().to_msg()
    return msg


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--late-after", type=float, default=10.0)
    args = parser.parse_args()

    rclpy.init()
    node = rclpy.create_node("robot")
    # Keep all: starved of CPU, this process publishes in bursts, and a keep-last writer would
    # discard the start of a burst itself before any reader could take it.
    reliable = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE)
    latched = QoSProfile(
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )
    published = {}

    def publisher(msg_type, topic, qos=reliable):
        pub = node.create_publisher(msg_type, topic, qos)
        published[topic] = []

        def send(msg):
            pub.publish(msg)
            published[topic].append(plain(msg))

        return send

    def chatter_msg(n):
        return String(data=f"chatter {n}")

    def imu_msg(n):
        msg = stamp(Imu(), node)
        msg.header.frame_id = "imu_link"
        msg.angular_velocity.z = n * 0.001
        msg.linear_acceleration.z = 9.81
        msg.orientation.w = 1.0
        msg.orientation_covariance[0] = 0.01 * n
        return msg

    def pose_msg(n):
        msg = stamp(PoseStamped(), node)
        msg.header.frame_id = "map"
        msg.pose.position.x = float(n)
        msg.pose.orientation.w = 1.0
        return msg

    def image_msg(n, frame_id):
        msg = stamp(Image(), node)
        msg.header.frame_id = frame_id
        msg.height, msg.width, msg.encoding, msg.step = HEIGHT, WIDTH, "rgb8", WIDTH * 3
        shift = n % 256
        msg.data = PATTERN[shift:] + PATTERN[:shift]
        return msg

    streams = [
        (publisher(String, "/chatter"), 20, chatter_msg),
        (publisher(Imu, "/imu"), 200, imu_msg),
        (publisher(PoseStamped, "/pose"), 50, pose_msg),
        (publisher(Image, "/camera/image"), 10, lambda n: image_msg(n, "camera")),
        (publisher(Image, "/camera/color/image_raw"), 5, lambda n: image_msg(n, "color")),
    ]
    publisher(String, "/robot_description", latched)(String(data="<robot name='test'/>"))
    publisher(Clock, "/clock")(Clock())
    publisher(PoseStamped, "/secret/pose")(pose_msg(0))
    for send, _, make in streams:
        send(make(0))
    started = time.monotonic()
    print("ready", file=sys.stderr, flush=True)

    if sys.stdin.readline().strip() != "go":
        sys.exit("expected 'go' on stdin")
    late = None
    go = time.monotonic()
    sent = [1] * len(streams)
    late_sent = 0
    # Each stream sends what is due by now: a message count from elapsed time, not sleeps
    # per message, so slow iterations do not lower the rate.
    while True:
        now = time.monotonic()
        streaming = now - go < args.seconds
        for i, (send, hz, make) in enumerate(streams):
            due = 1 + int((now - go) * hz) if streaming else sent[i]
            while sent[i] < due:
                send(make(sent[i]))
                sent[i] += 1
        if now - started >= args.late_after:
            if late is None:
                late = (publisher(String, "/late"), now)
            due = min(20, 1 + int((now - late[1]) * 10))
            while late_sent < due:
                late[0](String(data=f"late {late_sent}"))
                late_sent += 1
        if not streaming and late_sent >= 20:
            break
        rclpy.spin_once(node, timeout_sec=0.001)
    # Reliable delivery of the last messages needs the writer alive a little longer.
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    json.dump(published, sys.stdout)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
