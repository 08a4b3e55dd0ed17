#!/usr/bin/env python3
"""Writes a synthetic RealSense recording with pyrealsense2's software device and recorder.

    make_realsense_recording.py OUT --depth 64x48 --color 96x72 --fps 30 --frames 20
        [--color-format rgb8|bgr8]

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
JPEG keeps it within a few levels. Prints the intrinsics as JSON on stdout.
"""

import argparse
import json
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--depth", type=size, default=(64, 48))
    parser.add_argument("--color", type=size, default=(96, 72))
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--color-format", choices=["rgb8", "bgr8"], default="rgb8")
    args = parser.parse_args()
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

    recorder = rs.recorder(args.out, device)
    depth_sensor.open(depth_profile)
    color_sensor.open(color_profile)
    depth_sensor.start(lambda frame: None)
    color_sensor.start(lambda frame: None)

    # Drawn up front: drawing a 1280x720 frame in Python takes longer than a frame period.
    frames = [
        (depth_pixels(dw, dh, frame), color_pixels(cw, ch, frame, bgr))
        for frame in range(args.frames)
    ]
    start = time.monotonic()
    for frame, (depth, color) in enumerate(frames):
        stamp_ms = 1000.0 + frame * 1000.0 / args.fps
        time.sleep(max(0.0, start + frame / args.fps - time.monotonic()))
        for sensor, profile, pixels, bpp, width in (
            (depth_sensor, depth_profile, depth, 2, dw),
            (color_sensor, color_profile, color, 3, cw),
        ):
            video = rs.software_video_frame()
            video.pixels = pixels
            video.bpp, video.stride = bpp, width * bpp
            video.timestamp = stamp_ms
            video.domain = rs.timestamp_domain.hardware_clock
            video.frame_number = frame + 1
            video.profile = profile
            if profile is depth_profile:
                video.depth_units = 0.001
            sensor.on_video_frame(video)

    for sensor in (depth_sensor, color_sensor):
        sensor.stop()
        sensor.close()
    del recorder

    def described(i):
        return {
            "width": i.width, "height": i.height, "ppx": i.ppx, "ppy": i.ppy, "fx": i.fx,
            "fy": i.fy, "model": str(i.model), "coeffs": list(i.coeffs),
        }

    json.dump({"depth": described(depth_intrinsics), "color": described(color_intrinsics),
               "frames": args.frames, "fps": args.fps}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
