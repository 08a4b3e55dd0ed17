"""Runs the bridge as a ROS 2 node: `ros2 launch dtbridge bridge.launch.py config:=robot.toml`.

The node is `dtbridge run -c CONFIG` (the config's `ros2` sources choose the topics); LiveKit
credentials come from the environment (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET or
LIVEKIT_TOKEN), which ros2 launch passes on.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    return LaunchDescription(
        [
            DeclareLaunchArgument("config", description="dtbridge configuration file (TOML)"),
            DeclareLaunchArgument(
                "log_level", default_value="info", description="RUST_LOG filter, e.g. debug"
            ),
            Node(
                package="dtbridge",
                executable="dtbridge",
                name="dtbridge",
                output="screen",
                arguments=["run", "-c", LaunchConfiguration("config")],
                additional_env={"RUST_LOG": LaunchConfiguration("log_level")},
            ),
        ]
    )
