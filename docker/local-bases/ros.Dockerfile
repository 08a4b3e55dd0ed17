# dtbridge-local/ros: the layout of ros:*-ros-base (/opt/ros/$ROS_DISTRO/setup.sh,
# /ros_entrypoint.sh) with ROS 2 from the PyPI wheels' prefix (CONTEXT/ros2-prefix/).
ARG BASE
FROM ${BASE}
# python3.11 and libpython3.11: the wheels' librcl loads Python message libraries, and rclpy
# runs on the same prefix.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpython3.11 python3.11 \
    && rm -rf /var/lib/apt/lists/*
COPY ros2-prefix /opt/ros/kilted
COPY setup.sh /opt/ros/kilted/setup.sh
COPY ros_entrypoint.sh /ros_entrypoint.sh
# The venv points at the host's Python: re-point it. The RMW shim (scripts/ros2-env.sh) and
# the dynamic linker's paths make the wheels' libraries found as an installed ROS's are.
RUN ln -sf /usr/bin/python3.11 /opt/ros/kilted/bin/python3.11 \
    && sed -i 's|^home = .*|home = /usr/bin|; /^executable/d; /^command/d' /opt/ros/kilted/pyvenv.cfg \
    && mkdir -p /opt/ros/kilted/rmw-shim/lib \
    && ln -sf /opt/ros/kilted/lib/librmw_fastrtps_cpp.so /opt/ros/kilted/rmw-shim/lib/librmw_implementation.so \
    && ln -sf setup.sh /opt/ros/kilted/setup.bash \
    && { echo /opt/ros/kilted/lib; echo /opt/ros/kilted/rmw-shim/lib; \
         ls -d /opt/ros/kilted/lib/python3.11/site-packages/ros_*.libs; } > /etc/ld.so.conf.d/ros2.conf \
    && ldconfig
ENV ROS_DISTRO=kilted
ENTRYPOINT ["/ros_entrypoint.sh"]
CMD ["bash"]
