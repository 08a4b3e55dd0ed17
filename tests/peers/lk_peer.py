#!/usr/bin/env python3
"""Interop peer for dtbridge tests, built on the official Python `livekit` SDK (pinned in
scripts/requirements-test.txt; run it with the venv from scripts/setup-python.sh).

Output: one JSON object per line on stdout (flushed); diagnostics on stderr.

Subcommands
  publish        --track NAME --count N --seed S [--rate HZ] [--byte-rate BPS] [--sizes 1,100,...]
  subscribe      --track NAME --count N [--timeout SECS] [--idle-timeout SECS]
                 [--buffer-size K] [--max-partial-frames P] [--verify-seed S]
  bench-publish  --track NAME --size BYTES --rate HZ --duration SECS
  bench-subscribe --track NAME [--timeout SECS] [--idle-timeout SECS] [--buffer-size K]
  watch          (no options) reports the room's data tracks and departures until stdin ends
  bench-streams  --stream NAME:BYTES:HZ [--stream ...] --duration SECS [--hold SECS]

Watch: prints {"event":"joined"} once connected, then as they happen
  {"event":"track_published","name":N,"sid":S,"publisher":P} (also for tracks that exist
  when it joins), {"event":"track_unpublished","sid":S} and
  {"event":"participant_disconnected","identity":P}; leaves on stdin EOF or any line.

Protocol with the test harness (publish / bench-publish):
  prints {"event":"published",...}, then waits for ONE line on stdin (any text, or EOF)
  before pushing; prints {"event":"done",...}; then waits for another line (e.g. "quit")
  or EOF on stdin, unpublishes and disconnects.
  publish only: each stdin line "probe" before the start line pushes one probe frame
  (payload b"probe", user_timestamp 1, 2, 3, ...) and prints {"event":"probe_sent","ts":K};
  a harness repeats it until a probe reaches its subscriber, which proves the SFU path is up.

Probes (subscribe): a frame whose user_timestamp is below TS_BASE is a probe: it prints
  {"event":"probe","ts":K} and does not count towards --count (nor the idle timeout).

Deterministic payload generator (publish; reproduce it in Rust with plain u64 arithmetic):
  size_i  = sizes[i % len(sizes)]
  byte_j  = (i*31 + j*7 + seed) mod 256        for j in 0..size_i
            (Rust: (i.wrapping_mul(31).wrapping_add(j * 7).wrapping_add(seed)) as u8, all u64)
  user_timestamp_i = 1_700_000_000_000 + i     (so the receiver recovers i = ts - BASE)
                     in milliseconds; --timestamp-unit us|ns scales it by 1000 or 10^6, as
                     LiveKit's C++ examples and Foxglove's remote access stamp frames
  Default sizes: 1,2,100,1000,4096,15000,16000,16001,65511,65512.

Bench frame layout (bench-publish): bytes 0..8 = send time in UNIX microseconds (LE u64),
bytes 8..16 = sequence number from 0 (LE u64), rest zeros; frame size >= 16.
No user_timestamp is set on bench frames.

bench-streams (scripts/bench.sh link): one participant publishes several tracks at once, each
at its own rate and frame size, as a robot does; every frame carries user_timestamp = the UNIX
milliseconds when it was pushed (as dtbridge stamps frames), its payload is incompressible
bytes. Same stdin protocol as bench-publish. After the start line it holds --hold seconds
(default 0.5, dtbridge's SUBSCRIBE_WINDOW: LiveKit tells a publisher nothing about its
subscribers, so subscribers in the room need that long to set up their subscriptions to new
tracks) and then pushes for --duration seconds. "done" has per track "pushed" and "dropped"
(QueueFull), the pushing time "secs" and this process's CPU seconds (user + system, all
threads, the SDK's native ones included) over it, "cpu_secs".
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import struct
import sys
import threading
import time
from typing import Optional

from livekit import rtc

TS_BASE = 1_700_000_000_000
# user_timestamp scale per --timestamp-unit
TIMESTAMP_SCALE = {"ms": 1, "us": 1_000, "ns": 1_000_000}
DEFAULT_SIZES = "1,2,100,1000,4096,15000,16000,16001,65511,65512"


# ---------------------------------------------------------------- helpers

def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def log(msg: str) -> None:
    sys.stderr.write(f"[lk_peer {os.getpid()}] {msg}\n")
    sys.stderr.flush()


def gen_payload(seed: int, i: int, size: int) -> bytes:
    """byte j = (i*31 + j*7 + seed) & 0xFF. Period 256 in j (7 is odd), so build one period."""
    base = (i * 31 + seed) & 0xFF
    period = bytes((base + j * 7) & 0xFF for j in range(256))
    reps, rest = divmod(size, 256)
    return period * reps + period[:rest]


def parse_sizes(s: str) -> list[int]:
    sizes = [int(x) for x in s.split(",") if x.strip()]
    if not sizes or any(x < 0 for x in sizes):
        raise SystemExit("--sizes must be a non-empty list of non-negative ints")
    return sizes


def is_queue_full(err: Exception) -> bool:
    return "full" in str(getattr(err, "message", err)).lower()


class StdinLines:
    """Reads stdin lines on a daemon thread (never blocks interpreter exit)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._q: asyncio.Queue[Optional[str]] = asyncio.Queue()
        self._loop = loop
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        for line in sys.stdin:
            self._loop.call_soon_threadsafe(self._q.put_nowait, line.rstrip("\n"))
        self._loop.call_soon_threadsafe(self._q.put_nowait, None)  # EOF

    async def readline(self) -> Optional[str]:
        """Next line, or None on EOF (EOF is sticky)."""
        line = await self._q.get()
        if line is None:
            self._q.put_nowait(None)
        return line


def make_token(args: argparse.Namespace) -> str:
    if args.token:
        return args.token
    if not (args.api_key and args.api_secret and args.room and args.identity):
        raise SystemExit("need --token, or --api-key/--api-secret/--room/--identity")
    from livekit import api  # imported lazily: only needed to mint tokens

    grants = api.VideoGrants(
        room_join=True,
        room=args.room,
        can_publish=True,
        can_publish_data=True,
        can_subscribe=True,
    )
    return (
        api.AccessToken(args.api_key, args.api_secret)
        .with_identity(args.identity)
        .with_name(args.identity)
        .with_grants(grants)
        .to_jwt()
    )


async def connect(args: argparse.Namespace, room: rtc.Room) -> None:
    t0 = time.monotonic()
    options = rtc.RoomOptions(auto_subscribe=True)
    if args.e2ee_key is not None:
        # Room-wide end-to-end encryption with a shared key, data tracks included.
        # No ratcheting: it costs 16 PBKDF2 derivations per frame a wrong key fails, and
        # dtbridge does not ratchet keys.
        options.encryption = rtc.E2EEOptions(key_provider_options=rtc.KeyProviderOptions(
            shared_key=args.e2ee_key.encode(), ratchet_window_size=0))
    await room.connect(args.url, make_token(args), options)
    log(f"connected to {args.url} room={room.name} in {time.monotonic() - t0:.2f}s")


async def publish_track(room: rtc.Room, name: str) -> rtc.LocalDataTrack:
    t0 = time.monotonic()
    track = await room.local_participant.publish_data_track(name=name)
    emit({"event": "published", "name": track.info.name, "sid": track.info.sid,
          "ms": round((time.monotonic() - t0) * 1000)})
    return track


async def wait_remote_track(room: rtc.Room, found: "asyncio.Future[rtc.RemoteDataTrack]",
                            timeout: float) -> rtc.RemoteDataTrack:
    try:
        return await asyncio.wait_for(asyncio.shield(found), timeout)
    except asyncio.TimeoutError:
        raise SystemExit(f"no remote data track published within {timeout}s")


def track_listener(room: rtc.Room, name: str) -> "asyncio.Future[rtc.RemoteDataTrack]":
    """Must be installed BEFORE room.connect(): tracks already published when we join are
    reported through the same "data_track_published" event during/after connect."""
    fut: asyncio.Future[rtc.RemoteDataTrack] = asyncio.get_running_loop().create_future()

    def on_published(track: rtc.RemoteDataTrack) -> None:
        log(f"remote data track published: {track!r}")
        if track.info.name == name and not fut.done():
            fut.set_result(track)

    room.on("data_track_published", on_published)
    return fut


# ---------------------------------------------------------------- subcommands

async def cmd_publish(args: argparse.Namespace) -> int:
    sizes = parse_sizes(args.sizes)
    room = rtc.Room()
    stdin = StdinLines(asyncio.get_running_loop())
    await connect(args, room)
    track = await publish_track(room, args.track)
    probes = 0
    while (await stdin.readline()) == "probe":  # anything else (or EOF) means "start"
        probes += 1
        try:
            track.try_push(rtc.DataTrackFrame(payload=b"probe", user_timestamp=probes))
        except rtc.PushFrameError as e:
            log(f"probe {probes} not pushed: {e.message}")
        emit({"event": "probe_sent", "ts": probes})

    interval = 1.0 / args.rate if args.rate else 0.0
    retries = 0
    t0 = time.monotonic()
    next_at = t0  # pacing: frame i+1 no earlier than max(1/rate, size_i/byte_rate) after frame i
    for i in range(args.count):
        size = sizes[i % len(sizes)]
        delay = next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        next_at = max(next_at, time.monotonic() - 0.05) + max(
            interval, size / args.byte_rate if args.byte_rate else 0.0)
        frame = rtc.DataTrackFrame(payload=gen_payload(args.seed, i, size),
                                   user_timestamp=(TS_BASE + i) * TIMESTAMP_SCALE[args.timestamp_unit])
        while True:
            try:
                track.try_push(frame)
                break
            except rtc.PushFrameError as e:
                if not is_queue_full(e):
                    emit({"event": "error", "index": i, "message": e.message})
                    return 1
                retries += 1
                await asyncio.sleep(0.002)
    elapsed = time.monotonic() - t0
    emit({"event": "done", "pushed": args.count, "retries": retries,
          "secs": round(elapsed, 3)})

    await stdin.readline()  # "quit" (or EOF)
    await track.unpublish()
    await room.disconnect()
    return 0


async def subscribe_stream(args: argparse.Namespace, room: rtc.Room) -> rtc.DataTrackStream:
    found = track_listener(room, args.track)
    await connect(args, room)
    remote = await wait_remote_track(room, found, args.track_timeout)
    if args.max_partial_frames is not None:
        remote.set_pipeline_options(max_partial_frames=args.max_partial_frames)
    stream = remote.subscribe(buffer_size=args.buffer_size)
    emit({"event": "subscribed", "name": remote.info.name, "sid": remote.info.sid,
          "publisher": remote.publisher_identity})
    return stream


async def read_frames(stream: rtc.DataTrackStream, args: argparse.Namespace, deadline: float,
                      limit: Optional[int], on_frame) -> Optional[str]:
    """Calls on_frame(frame) until `limit` frames, overall deadline or idle timeout.
    A frame for which on_frame returns False (a probe) does not count.
    Returns an error string if the stream ended with an error."""
    n = 0
    it = stream.__aiter__()
    while limit is None or n < limit:
        remaining = deadline - time.monotonic()
        if n > 0 and args.idle_timeout:
            remaining = min(remaining, args.idle_timeout)
        if remaining <= 0:
            break
        try:
            frame = await asyncio.wait_for(it.__anext__(), remaining)
        except asyncio.TimeoutError:
            break
        except StopAsyncIteration:
            break
        except rtc.SubscribeDataTrackError as e:
            return e.message
        if on_frame(frame) is not False:
            n += 1
    return None


async def cmd_subscribe(args: argparse.Namespace) -> int:
    sizes = parse_sizes(args.sizes)
    room = rtc.Room()
    deadline = time.monotonic() + args.timeout
    stream = await subscribe_stream(args, room)
    stats = {"received": 0, "valid": 0}

    def on_frame(frame: rtc.DataTrackFrame) -> bool:
        payload = bytes(frame.payload)
        ts = frame.user_timestamp
        if ts is not None and ts < TS_BASE:
            emit({"event": "probe", "ts": ts, "len": len(payload)})
            return False
        out = {"event": "frame", "len": len(payload),
               "sha256": hashlib.sha256(payload).hexdigest(), "ts": ts}
        stats["received"] += 1
        if args.verify_seed is not None:
            i = (ts - TS_BASE) if ts is not None else -1
            expected = gen_payload(args.verify_seed, i, sizes[i % len(sizes)]) if i >= 0 else b""
            ok = 0 <= i and payload == expected
            out["index"] = i
            out["valid"] = ok
            # For a subscriber without the key of an encrypted track: what the server forwarded.
            out["contains_plaintext"] = len(expected) >= 16 and expected in payload
            stats["valid"] += int(ok)
        emit(out)
        return True

    err = await read_frames(stream, args, deadline, args.count, on_frame)
    done = {"event": "done", "received": stats["received"]}
    if args.verify_seed is not None:
        done["valid"] = stats["valid"]
    if err:
        done["error"] = err
    emit(done)
    stream.close()
    await room.disconnect()
    return 0


async def cmd_bench_publish(args: argparse.Namespace) -> int:
    if args.size < 16:
        raise SystemExit("--size must be >= 16")
    room = rtc.Room()
    stdin = StdinLines(asyncio.get_running_loop())
    await connect(args, room)
    track = await publish_track(room, args.track)
    await stdin.readline()

    tail = bytes(args.size - 16)
    interval = 1.0 / args.rate
    total = int(args.rate * args.duration)
    sent = dropped = 0
    t0 = time.monotonic()
    for seq in range(total):
        delay = t0 + seq * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif seq % 64 == 0:
            await asyncio.sleep(0)  # let the event loop breathe when behind schedule
        payload = struct.pack("<QQ", time.time_ns() // 1000, seq) + tail
        try:
            track.try_push(rtc.DataTrackFrame(payload=payload))
            sent += 1
        except rtc.PushFrameError as e:
            if not is_queue_full(e):
                emit({"event": "error", "seq": seq, "message": e.message})
                return 1
            dropped += 1
    elapsed = time.monotonic() - t0
    emit({"event": "done", "sent": sent, "dropped": dropped, "secs": round(elapsed, 3),
          "achieved_hz": round(total / elapsed, 1) if elapsed > 0 else None})

    await stdin.readline()
    await track.unpublish()
    await room.disconnect()
    return 0


async def cmd_bench_subscribe(args: argparse.Namespace) -> int:
    room = rtc.Room()
    deadline = time.monotonic() + args.timeout
    stream = await subscribe_stream(args, room)
    lat_us: list[int] = []
    seqs: set[int] = set()
    nbytes = 0

    def on_frame(frame: rtc.DataTrackFrame) -> None:
        nonlocal nbytes
        now = time.time_ns() // 1000
        payload = bytes(frame.payload)
        nbytes += len(payload)
        if len(payload) >= 16:
            sent_us, seq = struct.unpack_from("<QQ", payload)
            lat_us.append(now - sent_us)
            seqs.add(seq)

    err = await read_frames(stream, args, deadline, None, on_frame)
    lat_us.sort()

    def pct(p: float) -> Optional[int]:
        return lat_us[min(len(lat_us) - 1, int(p * len(lat_us)))] if lat_us else None

    out = {"event": "done", "received": len(lat_us), "unique": len(seqs),
           "max_seq": max(seqs) if seqs else None, "bytes": nbytes,
           "lat_us_p50": pct(0.50), "lat_us_p90": pct(0.90), "lat_us_p99": pct(0.99),
           "lat_us_max": lat_us[-1] if lat_us else None}
    if err:
        out["error"] = err
    emit(out)
    stream.close()
    await room.disconnect()
    return 0


async def cmd_watch(args: argparse.Namespace) -> int:
    room = rtc.Room()
    stdin = StdinLines(asyncio.get_running_loop())

    def on_published(track: rtc.RemoteDataTrack) -> None:
        emit({"event": "track_published", "name": track.info.name, "sid": track.info.sid,
              "publisher": track.publisher_identity})

    def on_unpublished(sid: str) -> None:
        emit({"event": "track_unpublished", "sid": sid})

    def on_disconnected(participant: rtc.RemoteParticipant) -> None:
        emit({"event": "participant_disconnected", "identity": participant.identity})

    room.on("data_track_published", on_published)
    room.on("data_track_unpublished", on_unpublished)
    room.on("participant_disconnected", on_disconnected)
    await connect(args, room)
    emit({"event": "joined"})
    await stdin.readline()
    await room.disconnect()
    return 0


def parse_stream(text: str) -> tuple[str, int, float]:
    try:
        name, size, hz = text.rsplit(":", 2)
        stream = (name, int(size), float(hz))
    except ValueError:
        raise SystemExit(f"--stream {text!r}: expected NAME:BYTES:HZ")
    if not name or stream[1] < 1 or not stream[2] > 0:
        raise SystemExit(f"--stream {text!r}: need a name, BYTES >= 1 and HZ > 0")
    return stream


async def cmd_bench_streams(args: argparse.Namespace) -> int:
    streams = [parse_stream(text) for text in args.stream]
    room = rtc.Room()
    stdin = StdinLines(asyncio.get_running_loop())
    await connect(args, room)
    tracks = [await publish_track(room, name) for name, _, _ in streams]
    await stdin.readline()
    await asyncio.sleep(args.hold)

    # One payload per stream, reused: random, so nothing on the way can compress it.
    payloads = [os.urandom(size) for _, size, _ in streams]
    periods = [1.0 / hz for _, _, hz in streams]
    pushed = [0] * len(streams)
    dropped = [0] * len(streams)
    cpu0 = os.times()
    t0 = time.monotonic()
    end = t0 + args.duration
    due = [t0] * len(streams)
    while True:
        i = min(range(len(streams)), key=due.__getitem__)
        if due[i] >= end:
            break
        delay = due[i] - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        # A stream that fell behind skips the missed frames, as dtbridge's sources do.
        now = time.monotonic()
        due[i] += periods[i] * max(1, int((now - due[i]) / periods[i]) + 1)
        frame = rtc.DataTrackFrame(payload=payloads[i], user_timestamp=time.time_ns() // 1_000_000)
        try:
            tracks[i].try_push(frame)
            pushed[i] += 1
        except rtc.PushFrameError as e:
            if not is_queue_full(e):
                emit({"event": "error", "track": streams[i][0], "message": e.message})
                return 1
            dropped[i] += 1
    elapsed = time.monotonic() - t0
    cpu1 = os.times()
    emit({"event": "done", "secs": round(elapsed, 3),
          "cpu_secs": round(cpu1.user + cpu1.system - cpu0.user - cpu0.system, 3),
          "tracks": {name: {"pushed": pushed[i], "dropped": dropped[i]}
                     for i, (name, _, _) in enumerate(streams)}})

    await stdin.readline()
    for track in tracks:
        await track.unpublish()
    await room.disconnect()
    return 0


# ---------------------------------------------------------------- CLI

def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=os.environ.get("LIVEKIT_URL"), required=not os.environ.get("LIVEKIT_URL"))
    p.add_argument("--token", default=None)
    p.add_argument("--api-key", default=os.environ.get("LIVEKIT_API_KEY"))
    p.add_argument("--api-secret", default=os.environ.get("LIVEKIT_API_SECRET"))
    p.add_argument("--room", default=os.environ.get("LIVEKIT_ROOM", "dtbridge-test"))
    p.add_argument("--identity", default=None)
    p.add_argument("--e2ee-key", default=None,
                   help="the room's shared end-to-end encryption key (text)")
    p.add_argument("--log-level", default=os.environ.get("LK_PEER_LOG", "WARNING"),
                   help="Python logging level for SDK logs on stderr (DEBUG also needs "
                        "LIVEKIT_RTC_DEBUG=1 for native debug logs)")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common_sub(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--timeout", type=float, default=60.0,
                        help="overall deadline in seconds (from process start)")
        sp.add_argument("--idle-timeout", type=float, default=None,
                        help="stop after this many seconds without a frame (after the first)")
        sp.add_argument("--track-timeout", type=float, default=30.0,
                        help="seconds to wait for the remote track to be published")
        sp.add_argument("--buffer-size", type=int, default=None,
                        help="subscriber frame buffer (SDK default 16; oldest dropped)")
        sp.add_argument("--max-partial-frames", type=int, default=None,
                        help="depacketizer partial frames tracked at once (SDK default 1)")

    sp = sub.add_parser("publish")
    sp.add_argument("--track", required=True)
    sp.add_argument("--count", type=int, required=True)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--rate", type=float, default=None, help="frames/s (default: as fast as possible)")
    sp.add_argument("--byte-rate", type=float, default=None,
                    help="also pace by payload bytes/s (a frame of S bytes is followed by S/BPS s)")
    sp.add_argument("--sizes", default=DEFAULT_SIZES)
    sp.add_argument("--timestamp-unit", choices=sorted(TIMESTAMP_SCALE), default="ms")

    sp = sub.add_parser("subscribe")
    sp.add_argument("--track", required=True)
    sp.add_argument("--count", type=int, required=True)
    sp.add_argument("--verify-seed", type=int, default=None,
                    help="check payloads against the publish generator (adds index/valid fields)")
    sp.add_argument("--sizes", default=DEFAULT_SIZES, help="sizes used by the publisher (for --verify-seed)")
    common_sub(sp)

    sp = sub.add_parser("bench-publish")
    sp.add_argument("--track", required=True)
    sp.add_argument("--size", type=int, required=True)
    sp.add_argument("--rate", type=float, required=True)
    sp.add_argument("--duration", type=float, required=True)

    sp = sub.add_parser("bench-streams")
    sp.add_argument("--stream", action="append", required=True, help="NAME:BYTES:HZ (repeat)")
    sp.add_argument("--duration", type=float, required=True)
    sp.add_argument("--hold", type=float, default=0.5)

    sp = sub.add_parser("bench-subscribe")
    sp.add_argument("--track", required=True)
    common_sub(sp)

    sub.add_parser("watch")

    args = p.parse_args()
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.identity is None:
        args.identity = f"py-{args.cmd}-{os.getpid()}"
    fn = {"publish": cmd_publish, "subscribe": cmd_subscribe,
          "bench-publish": cmd_bench_publish, "bench-subscribe": cmd_bench_subscribe,
          "watch": cmd_watch, "bench-streams": cmd_bench_streams}[args.cmd]
    return asyncio.run(fn(args))


if __name__ == "__main__":
    sys.exit(main())
