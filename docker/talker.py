#!/usr/bin/env python3
"""The demo's ROS 2 node (docker/compose.yaml, profile demo): std_msgs/String "hello N" on
/chatter at --hz, reliable, from N = 0, until SIGTERM or SIGINT; then prints "sent N" (N
messages, 0..N-1), so that a recording can be compared with what was sent."""

import argparse
import signal
import sys

import rclpy
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import String


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hz", type=float, default=10.0)
    args = parser.parse_args()

    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("talker")
    publisher = node.create_publisher(String, "/chatter", 1000)
    sent = 0

    def publish():
        nonlocal sent
        publisher.publish(String(data=f"hello {sent}"))
        sent += 1

    node.create_timer(1.0 / args.hz, publish)
    stopping = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.append(True))
    print("talking on /chatter", flush=True)
    while not stopping:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(f"sent {sent}", flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
