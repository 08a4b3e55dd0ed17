#!/bin/bash
# As the official ros images' entrypoint: the ROS environment, then the command (exec: it
# keeps PID 1 and receives `docker stop`'s SIGTERM).
set -e
source "/opt/ros/$ROS_DISTRO/setup.bash" --
exec "$@"
