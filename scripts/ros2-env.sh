# Source this file (bash) to build and run dtbridge with `--features ros2` against ROS 2 Kilted
# from the PyPI `ros-*` wheels, on a machine without a ROS 2 installation:
#
#   source scripts/ros2-env.sh && cargo build --release --features ros2
#
# It installs the wheels (scripts/setup-ros2.sh, cached under ${DTBRIDGE_CACHE:-~/.cache/dtbridge})
# and exports what r2r needs to generate its bindings, link, and run (see
# ../shared/notes/ros2-from-pypi.md for why each one is there). On a robot with a sourced ROS 2
# installation none of this is needed: r2r uses that installation's environment.
#
# Needs clang and libclang (bindgen) and libpython3.11 (librcl loads Python message libraries);
# scripts/test.sh installs them.

_dtbridge_ros2_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DTBRIDGE_ROS2_PYTHON="${DTBRIDGE_ROS2_PYTHON:-$(bash "$_dtbridge_ros2_here/setup-ros2.sh" | tail -n1)}" \
  || return 1
export DTBRIDGE_ROS2_PYTHON
_dtbridge_ros2_prefix="$(cd "$(dirname "$DTBRIDGE_ROS2_PYTHON")/.." && pwd)"

# The wheels carry a single RMW, so there is no librmw_implementation.so, which r2r links: a
# second prefix holds that name for Fast DDS (r2r adds CMAKE_PREFIX_PATH's lib/ to its search).
# The ROS prefix follows it, as `colcon build` adds it for an ament_cmake package: cargo under
# colcon (tests/colcon.rs) then sees the environment it sees here, and r2r, which rebuilds
# whenever CMAKE_PREFIX_PATH changes, is not compiled twice.
_dtbridge_rmw_shim="$_dtbridge_ros2_prefix/rmw-shim"
mkdir -p "$_dtbridge_rmw_shim/lib"
ln -sf "$_dtbridge_ros2_prefix/lib/librmw_fastrtps_cpp.so" \
  "$_dtbridge_rmw_shim/lib/librmw_implementation.so"

_dtbridge_ros2_libs="$_dtbridge_ros2_prefix/lib:$_dtbridge_rmw_shim/lib"
for _dtbridge_dir in "$_dtbridge_ros2_prefix"/lib/python3*/site-packages/ros_*.libs; do
  [[ -d "$_dtbridge_dir" ]] && _dtbridge_ros2_libs="$_dtbridge_ros2_libs:$_dtbridge_dir"
done

export AMENT_PREFIX_PATH="$_dtbridge_ros2_prefix"
export CMAKE_PREFIX_PATH="$_dtbridge_rmw_shim:$_dtbridge_ros2_prefix"
# The wheels are Kilted; r2r 0.9.7 accepts foxy..jazzy, lyrical and rolling, and Kilted has
# every symbol it uses.
export ROS_DISTRO=jazzy
export LD_LIBRARY_PATH="$_dtbridge_ros2_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
# The wheels' bootstrapper re-executes Python to set LD_LIBRARY_PATH; it is set already.
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
# Message packages r2r generates Rust types for (it adds the ones it needs itself); every
# package in the ament index otherwise, which on a robot can take many minutes. dtbridge uses
# none of these types: it loads each topic's type support at run time (vendor/r2r/PATCHES.md).
# librcl from the wheels loads Python message libraries: build.rs links this into the binary.
export DTBRIDGE_LINK_LIBPYTHON=libpython3.11.so.1.0
export IDL_PACKAGE_FILTER="${IDL_PACKAGE_FILTER-std_msgs}"
unset _dtbridge_ros2_here _dtbridge_ros2_prefix _dtbridge_rmw_shim _dtbridge_ros2_libs _dtbridge_dir
