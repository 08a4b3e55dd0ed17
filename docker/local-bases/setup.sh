# /opt/ros/kilted/setup.sh (and setup.bash) of docker/local-bases/ros.Dockerfile's image: what
# sourcing an installed ROS 2's setup script gives, for the PyPI wheels' prefix
# (scripts/ros2-env.sh does the same on the host; ../shared/notes/ros2-from-pypi.md).
export AMENT_PREFIX_PATH=/opt/ros/kilted
# rmw-shim: the wheels carry one RMW and no librmw_implementation.so, which r2r links.
export CMAKE_PREFIX_PATH=/opt/ros/kilted/rmw-shim:/opt/ros/kilted
export PATH="/opt/ros/kilted/bin:$PATH"
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
# The wheels' bootstrapper re-executes Python to set library paths; ld.so.conf has them.
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
# librcl from the wheels loads Python message libraries: dtbridge's build.rs links this.
export DTBRIDGE_LINK_LIBPYTHON=libpython3.11.so.1.0
# r2r 0.9.7 accepts foxy..jazzy, lyrical and rolling; Kilted has every symbol it uses.
export ROS_DISTRO=jazzy
