#!/usr/bin/env python3
"""rclpy publishers for tests/ros2.rs, tests/ros2_types.rs and the ROS 2 tests after them: a
small robot's ROS 2 graph, on real DDS.

Run with the ROS 2 wheels venv python and scripts/ros2-env.sh's environment (plus the test's
ROS_DOMAIN_ID). Timeline, in seconds from start:
  0   the latched topic, published once (transient local), and one first message on each
      streaming topic; prints "ready"
  go  after the line "go" on stdin: streams for --seconds, reliable and keep-all
Graphs (--graph):
  robot (default)  latched /robot_description (std_msgs/String); at 0 also /secret/pose
      (denied by the bridge's config); streams /chatter String 20 Hz, /imu Imu
      200 Hz, /pose PoseStamped 50 Hz, /camera/image Image 640x480 rgb8 10 Hz,
      /camera/color/image_raw Image 640x480 rgb8 5 Hz; --late-after: /late (String, 10 Hz,
      2 s) appears
  types  what robots publish besides cameras: latched /tf_static (tf2_msgs/TFMessage); streams
      /tf TFMessage 50 Hz, /odom nav_msgs/Odometry 20 Hz, /scan sensor_msgs/LaserScan 10 Hz,
      /points sensor_msgs/PointCloud2 (2000 points) 5 Hz, /camera/color/image_raw/compressed
      sensor_msgs/CompressedImage 10 Hz, /battery dtbridge_test_msgs/BatteryReport 5 Hz. Needs
      tests/ros2_packages built by colcon and its install/setup.bash sourced.
Then prints one JSON object: {topic: [message, ...]} with every message published, as fields
(nested messages as objects, uint8 arrays as {"len", "sha256"}, other arrays as lists), the
shape tests/peers/read_mcap.py prints decoded messages in.
"""

import argparse
import hashlib
import json
import struct
import sys
import time

import rclpy
from rclpy.duration import Duration
from geometry_msgs.msg import PoseStamped, TransformStamped
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, Imu, LaserScan, PointCloud2, PointField
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
    if ros_type == "float":
        # rclpy keeps the Python float a float32 field was set to; the wire carries it rounded.
        return struct.unpack("<f", struct.pack("<f", value))[0]
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
    parser.add_argument("--graph", choices=["robot", "types"], default="robot")
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
    writers = []

    def publisher(msg_type, topic, qos=reliable):
        pub = node.create_publisher(msg_type, topic, qos)
        writers.append(pub)
        published[topic] = []

        def send(msg):
            pub.publish(msg)
            published[topic].append(plain(msg))

        return send

    def robot_graph():
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

        publisher(String, "/robot_description", latched)(String(data="<robot name='test'/>"))
        publisher(PoseStamped, "/secret/pose")(pose_msg(0))
        return [
            (publisher(String, "/chatter"), 20, chatter_msg),
            (publisher(Imu, "/imu"), 200, imu_msg),
            (publisher(PoseStamped, "/pose"), 50, pose_msg),
            (publisher(Image, "/camera/image"), 10, lambda n: image_msg(n, "camera")),
            (publisher(Image, "/camera/color/image_raw"), 5, lambda n: image_msg(n, "color")),
        ]

    def types_graph():
        # Built by the test's colcon workspace (tests/ros2_packages): no wheels have them.
        from builtin_interfaces.msg import Duration
        from dtbridge_test_msgs.msg import BatteryReport, Cell
        from nav_msgs.msg import Odometry
        from tf2_msgs.msg import TFMessage

        def transform(parent, child, x):
            msg = stamp(TransformStamped(), node)
            msg.header.frame_id, msg.child_frame_id = parent, child
            msg.transform.translation.x = x
            msg.transform.rotation.w = 1.0
            return msg

        def tf_msg(n):
            return TFMessage(
                transforms=[transform("odom", "base_link", 0.01 * n), transform("map", "odom", 0.5)]
            )

        def odom_msg(n):
            msg = stamp(Odometry(), node)
            msg.header.frame_id, msg.child_frame_id = "odom", "base_link"
            msg.pose.pose.position.x = 0.01 * n
            msg.pose.pose.orientation.w = 1.0
            msg.pose.covariance[0] = 0.001 * n
            msg.twist.twist.linear.x = 0.5
            msg.twist.covariance[35] = 0.25
            return msg

        def scan_msg(n):
            msg = stamp(LaserScan(), node)
            msg.header.frame_id = "laser"
            msg.angle_min, msg.angle_max = -3.14159274, 3.14159274
            msg.angle_increment = 2 * 3.14159274 / 720
            msg.time_increment, msg.scan_time = 1.0 / 7200, 0.1
            msg.range_min, msg.range_max = 0.1, 30.0
            msg.ranges = [1.0 + 0.001 * ((i + n) % 1000) for i in range(720)]
            msg.intensities = [float((i * 7 + n) % 256) for i in range(720)]
            return msg

        def points_msg(n, count=2000):
            msg = stamp(PointCloud2(), node)
            msg.header.frame_id = "laser"
            msg.height, msg.width = 1, count
            msg.fields = [
                PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                for i, name in enumerate(["x", "y", "z", "intensity"])
            ]
            msg.is_bigendian, msg.point_step, msg.row_step = False, 16, 16 * count
            values = [
                v
                for i in range(count)
                for v in (0.01 * i, 0.02 * ((i + n) % 100), 0.5, float(i % 256))
            ]
            msg.data = struct.pack(f"<{len(values)}f", *values)
            msg.is_dense = True
            return msg

        def compressed_msg(n):
            msg = stamp(CompressedImage(), node)
            msg.header.frame_id = "color"
            msg.format = "jpeg"
            # Passed through as is: any bytes do; a JPEG's start and end markers around them.
            body = bytes((i * 31 + n) % 256 for i in range(20000))
            msg.data = b"\xff\xd8" + body + b"\xff\xd9"
            return msg

        def battery_msg(n):
            msg = stamp(BatteryReport(), node)
            msg.header.frame_id = "battery"
            msg.pack_id = f"pack-{n % 3}"
            msg.state = BatteryReport.STATE_DISCHARGING
            msg.cells = [Cell(voltage=3.7 + 0.01 * i, temperature=25.0 + n % 5) for i in range(4)]
            msg.currents = [1.5, -0.25, 0.125 * n]
            msg.cycle_count = 300 + n
            msg.faults = [n % 2 == 0, False]
            msg.remaining = Duration(sec=3600 - n, nanosec=500)
            return msg

        publisher(TFMessage, "/tf_static", latched)(
            TFMessage(
                transforms=[transform("base_link", "laser", 0.2), transform("base_link", "color", 0.1)]
            )
        )
        return [
            (publisher(TFMessage, "/tf"), 50, tf_msg),
            (publisher(Odometry, "/odom"), 20, odom_msg),
            (publisher(LaserScan, "/scan"), 10, scan_msg),
            (publisher(PointCloud2, "/points"), 5, points_msg),
            (publisher(CompressedImage, "/camera/color/image_raw/compressed"), 10, compressed_msg),
            (publisher(BatteryReport, "/battery"), 5, battery_msg),
        ]

    streams = robot_graph() if args.graph == "robot" else types_graph()
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
        if args.graph == "robot" and now - started >= args.late_after:
            if late is None:
                late = (publisher(String, "/late"), now)
            due = min(20, 1 + int((now - late[1]) * 10))
            while late_sent < due:
                late[0](String(data=f"late {late_sent}"))
                late_sent += 1
        if not streaming and (args.graph != "robot" or late_sent >= 20):
            break
        rclpy.spin_once(node, timeout_sec=0.001)
    # What a reliable writer holds when its process exits is lost: stay until every matched
    # reader has acknowledged every message (a process blocked in a large image's publish
    # sends the rest of its messages in a burst at the end).
    for writer in writers:
        if not writer.wait_for_all_acked(Duration(seconds=60)):
            print(f"{writer.topic_name}: not acknowledged within 60 s", file=sys.stderr)
    json.dump(published, sys.stdout)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
