#!/usr/bin/env python3
"""Writes a synthetic RealSense recording with pyrealsense2's software device and recorder.

    make_realsense_recording.py OUT --depth 64x48 --color 96x72 --fps 30 --frames 20
        [--color-format rgb8|bgr8] [--imu-hz 200]

librealsense 2.59 writes a ROS 2 (.db3) recording whatever the name; librealsense plays it back
like a camera (`file = ...` in a `realsense` source). Depth is Z16 with depth units 0.001,
color RGB8 or BGR8, both with the intrinsics below, stamped in the hardware clock domain
`1000 + frame * 1000 / fps` ms, frame numbers from 1. The recorder stores each frame at the
wall-clock time it was handed over, and real-time playback follows those times, so frames are
handed over 1/fps apart: writing takes as long as the recording lasts. Pixels are functions of (x, y, frame),
mirrored in tests/realsense.rs:

    depth[y][x] = 300 + (x * 7 + y * 13 + frame * 17) % 4000        (millimetres)
    color[y][x] = (x * 160 // w + frame, y * 160 // h + frame, (x + y) * 80 // (w + h) + 2 * frame)

given as (r, g, b) whatever the byte order. `frame` counts from 0. Color is smooth so that
JPEG keeps it within a few levels. Depth to color extrinsics: identity rotation, 15 mm along x.
With --imu-hz, a motion module adds gyro and accel samples at that rate for as long as the
video lasts, sample `n` (from 0) stamped `1000 + n * 1000 / imu_hz` ms:

    gyro = (0.01 * n, -0.02, 0.5) rad/s        accel = (0.0, -9.81, 0.001 * n) m/s^2

Prints the intrinsics (and the IMU sample count) as JSON on stdout. The recorder writes on
its own threads and can lose the last frames when the sensors stop under load, so the file is
played back and written again (up to three times) until it holds every frame.
"""

import argparse
import json
import os
import sys
import time

import pyrealsense2 as rs


def size(text):
    width, height = text.split("x")
    return int(width), int(height)


def intrinsics(width, height, fx, fy, model, coeffs):
    out = rs.intrinsics()
    out.width, out.height = width, height
    out.ppx, out.ppy = width / 2 - 0.25, height / 2 + 0.5
    out.fx, out.fy = fx, fy
    out.model = model
    out.coeffs = coeffs
    return out


def depth_pixels(width, height, frame):
    rows = []
    for y in range(height):
        base = y * 13 + frame * 17
        values = [300 + (x * 7 + base) % 4000 for x in range(width)]
        rows.append(b"".join(v.to_bytes(2, "little") for v in values))
    return b"".join(rows)


def color_pixels(width, height, frame, bgr):
    reds = [x * 160 // width + frame for x in range(width)]
    rows = []
    for y in range(height):
        g = y * 160 // height + frame
        blues = [(x + y) * 80 // (width + height) + 2 * frame for x in range(width)]
        pixels = zip(blues, [g] * width, reds) if bgr else zip(reds, [g] * width, blues)
        rows.append(bytes(v for pixel in pixels for v in pixel))
    return b"".join(rows)


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--depth", type=size, default=(64, 48))
    parser.add_argument("--color", type=size, default=(96, 72))
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--color-format", choices=["rgb8", "bgr8"], default="rgb8")
    parser.add_argument("--imu-hz", type=int, default=0)
    return parser.parse_args()


def write(args):
    """Writes the recording (replacing any file there); returns what it holds."""
    if os.path.exists(args.out):
        os.remove(args.out)
    bgr = args.color_format == "bgr8"

    device = rs.software_device()
    device.register_info(rs.camera_info.name, "dtbridge synthetic D435")
    device.register_info(rs.camera_info.serial_number, "000000000042")
    depth_sensor = device.add_sensor("Stereo Module")
    color_sensor = device.add_sensor("RGB Camera")

    (dw, dh), (cw, ch) = args.depth, args.color
    depth_intrinsics = intrinsics(
        dw, dh, dw * 0.75, dw * 0.75 + 1.5, rs.distortion.inverse_brown_conrady, [0.0] * 5
    )
    color_intrinsics = intrinsics(
        cw, ch, cw * 1.1, cw * 1.1 - 2.0, rs.distortion.brown_conrady,
        [0.125, -0.25, 0.001, -0.002, 0.0625],
    )

    depth_stream = rs.video_stream()
    depth_stream.type, depth_stream.index, depth_stream.uid = rs.stream.depth, 0, 1
    depth_stream.width, depth_stream.height, depth_stream.fps = dw, dh, args.fps
    depth_stream.bpp, depth_stream.fmt = 2, rs.format.z16
    depth_stream.intrinsics = depth_intrinsics
    depth_profile = depth_sensor.add_video_stream(depth_stream).as_video_stream_profile()
    depth_sensor.add_read_only_option(rs.option.depth_units, 0.001)

    color_stream = rs.video_stream()
    color_stream.type, color_stream.index, color_stream.uid = rs.stream.color, 0, 2
    color_stream.width, color_stream.height, color_stream.fps = cw, ch, args.fps
    color_stream.bpp, color_stream.fmt = 3, rs.format.bgr8 if bgr else rs.format.rgb8
    color_stream.intrinsics = color_intrinsics
    color_profile = color_sensor.add_video_stream(color_stream).as_video_stream_profile()

    extrinsics = rs.extrinsics()
    extrinsics.rotation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    extrinsics.translation = [0.015, 0.0, 0.0]
    depth_profile.register_extrinsics_to(color_profile, extrinsics)

    motion = []
    if args.imu_hz:
        motion_sensor = device.add_sensor("Motion Module")
        for kind, uid in ((rs.stream.gyro, 3), (rs.stream.accel, 4)):
            stream = rs.motion_stream()
            stream.type, stream.index, stream.uid = kind, 0, uid
            stream.fps, stream.fmt = args.imu_hz, rs.format.motion_xyz32f
            motion.append(motion_sensor.add_motion_stream(stream).as_motion_stream_profile())

    recorder = rs.recorder(args.out, device)
    depth_sensor.open(depth_profile)
    color_sensor.open(color_profile)
    depth_sensor.start(lambda frame: None)
    color_sensor.start(lambda frame: None)
    if motion:
        motion_sensor.open(motion)
        motion_sensor.start(lambda frame: None)

    # Drawn up front: drawing a 1280x720 frame in Python takes longer than a frame period.
    frames = [
        (depth_pixels(dw, dh, frame), color_pixels(cw, ch, frame, bgr))
        for frame in range(args.frames)
    ]
    # Everything in time order, each handed over at its time.
    imu_samples = args.frames * args.imu_hz // args.fps
    events = [(frame * 1000.0 / args.fps, 0, frame) for frame in range(args.frames)]
    events += [(n * 1000.0 / args.imu_hz, 1, n) for n in range(imu_samples)]
    events.sort()
    start = time.monotonic()
    for offset_ms, is_imu, n in events:
        time.sleep(max(0.0, start + offset_ms / 1000.0 - time.monotonic()))
        if is_imu:
            for profile, values in ((motion[0], (0.01 * n, -0.02, 0.5)),
                                    (motion[1], (0.0, -9.81, 0.001 * n))):
                sample = rs.software_motion_frame()
                vector = rs.vector()
                vector.x, vector.y, vector.z = values
                sample.data = vector
                sample.timestamp = 1000.0 + offset_ms
                sample.domain = rs.timestamp_domain.hardware_clock
                sample.frame_number = n + 1
                sample.profile = profile
                motion_sensor.on_motion_frame(sample)
            continue
        depth, color = frames[n]
        for sensor, profile, pixels, bpp, width in (
            (depth_sensor, depth_profile, depth, 2, dw),
            (color_sensor, color_profile, color, 3, cw),
        ):
            video = rs.software_video_frame()
            video.pixels = pixels
            video.bpp, video.stride = bpp, width * bpp
            video.timestamp = 1000.0 + offset_ms
            video.domain = rs.timestamp_domain.hardware_clock
            video.frame_number = n + 1
            video.profile = profile
            if profile is depth_profile:
                video.depth_units = 0.001
            sensor.on_video_frame(video)

    time.sleep(0.2)  # lets the recorder's threads catch up
    for sensor in [depth_sensor, color_sensor] + ([motion_sensor] if motion else []):
        sensor.stop()
        sensor.close()
    del recorder

    def described(i):
        return {
            "width": i.width, "height": i.height, "ppx": i.ppx, "ppy": i.ppy, "fx": i.fx,
            "fy": i.fy, "model": str(i.model), "coeffs": list(i.coeffs),
        }

    return {"depth": described(depth_intrinsics), "color": described(color_intrinsics),
            "frames": args.frames, "fps": args.fps, "imu_samples": imu_samples}


def frames_in(path):
    """The number of distinct depth and color frames a recording plays, every frame read."""
    config = rs.config()
    config.enable_device_from_file(path, False)
    config.enable_stream(rs.stream.depth)
    config.enable_stream(rs.stream.color)
    pipeline = rs.pipeline()
    config.resolve(rs.pipeline_wrapper(pipeline)).get_device().as_playback().set_real_time(False)
    pipeline.start(config)
    seen = {rs.stream.depth: set(), rs.stream.color: set()}
    while True:
        ok, frames = pipeline.try_wait_for_frames(1000)
        if not ok:
            break
        for frame in frames:
            seen[frame.profile.stream_type()].add(frame.frame_number)
    pipeline.stop()
    return min(len(numbers) for numbers in seen.values())


def main():
    args = parse_args()
    for attempt in range(3):
        description = write(args)
        found = frames_in(args.out)
        if found == args.frames:
            json.dump(description, sys.stdout)
            print()
            return
        print(f"attempt {attempt + 1}: {args.out} holds {found} of {args.frames} frames",
              file=sys.stderr)
    sys.exit(f"could not write all {args.frames} frames to {args.out}")


if __name__ == "__main__":
    main()
