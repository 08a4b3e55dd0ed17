#!/usr/bin/env node
// A real Foxglove WebSocket client for dtbridge's live view tests: the protocol client the
// Foxglove app itself uses (@foxglove/ws-protocol) over the `ws` WebSocket, and the app's ROS 2
// decoders (ros2_decode.mjs).
//
//   node foxglove_client.mjs --url ws://HOST:PORT [--subscribe TOPIC,TOPIC,...|*] [--seconds N]
//                            [--stall-after N] [--garbage] [--no-decode]
//
// stdout: one JSON object per line, nothing else (diagnostics go to stderr):
//   {"event":"open","protocol":"foxglove.sdk.v1"}
//   {"event":"server_info","name":..,"capabilities":[..],"supportedEncodings":[..]}
//   {"event":"status","level":N,"message":".."}            (status messages of the server)
//   {"event":"advertise","id":N,"topic":..,"encoding":..,"schemaName":..,"schemaEncoding":..}
//   {"event":"unadvertise","id":N,"topic":..}
//   {"event":"message","topic":..,"log_time_ns":"<u64 as decimal string>","sha256":"<hex>",
//    "decoded":{..}|null,"recv_ns":"<decimal string>"}
//   {"event":"message","topic":..,"log_time_ns":"..","recv_ns":"..","size":N}
//                                                           (--no-decode: no CDR decoding and no
//    hash, for benchmarks: scripts/bench.sh view)
//   recv_ns: this client's wall clock (UNIX ns, sub-ms precision) when the message was received.
//   {"event":"decode_error","topic":..,"error":"..","log_time_ns":..,"sha256":..} (instead of
//    the "message" line when decoding fails)
//   {"event":"stalled","messages":N}                        (--stall-after: reading stopped)
//   {"event":"error","error":".."}
//   {"event":"close","code":C,"reason":".."}                (the connection ended without us)
// Exit status: 0 after --seconds (30), when stdin (a pipe) closes, or when the server closes an
// open connection; 1 when the connection could not be opened; 2 on bad arguments.
import { randomBytes } from "node:crypto";
import fs from "node:fs";

import wsProtocol from "@foxglove/ws-protocol";
import WebSocket from "ws";

import { ros2Reader, sha256Hex, summarize } from "./ros2_decode.mjs";

const { FoxgloveClient } = wsProtocol;

// The Foxglove SDK (>= 0.30) server accepts only foxglove.sdk.v1 / foxglove.sdk.v1.1; older
// servers (foxglove_bridge, ws-protocol's own) only foxglove.websocket.v1.
const SUBPROTOCOLS = [FoxgloveClient.SUPPORTED_SUBPROTOCOL, "foxglove.sdk.v1"];

function usage(message) {
  process.stderr.write(
    `foxglove_client: ${message}\nusage: node foxglove_client.mjs --url ws://HOST:PORT ` +
      "[--subscribe TOPIC,TOPIC,...|*] [--seconds N] [--stall-after N] [--garbage] " +
      "[--no-decode]\n",
  );
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    url: null,
    subscribe: new Set(),
    seconds: 30,
    stallAfter: null,
    garbage: false,
    decode: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith("--") && arg.includes("=") ? arg.split(/=(.*)/s) : [arg];
    const value = () => {
      if (inline !== undefined) return inline;
      if (i + 1 >= argv.length) usage(`${flag} needs a value`);
      return argv[++i];
    };
    const number = (v, min) => {
      const n = Number(v);
      if (!Number.isFinite(n) || n < min) usage(`${flag}: not a number >= ${min}: ${v}`);
      return n;
    };
    switch (flag) {
      case "--url":
        opts.url = value();
        break;
      case "--subscribe":
        for (const topic of value().split(",")) if (topic !== "") opts.subscribe.add(topic);
        break;
      case "--seconds":
        opts.seconds = number(value(), 0);
        break;
      case "--stall-after":
        opts.stallAfter = Math.floor(number(value(), 0));
        break;
      case "--garbage":
        opts.garbage = true;
        break;
      case "--no-decode":
        opts.decode = false;
        break;
      case "-h":
      case "--help":
        usage("help");
        break;
      default:
        usage(`unknown argument: ${arg}`);
    }
  }
  if (!opts.url) usage("--url is required");
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

function emit(obj) {
  // Writes to pipes and files are synchronous on Linux: each line is out before the next event.
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function diag(message) {
  process.stderr.write(`[foxglove_client] ${message}\n`);
}

// The wall clock now, UNIX ns as a BigInt: performance.timeOrigin (the wall clock when this
// process started, with sub-ms precision) plus the monotonic time since; Date.now() only has ms.
function wallClockNs() {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
}

function errorText(err) {
  if (err instanceof Error) return err.message || String(err);
  if (err && typeof err === "object" && "message" in err) return String(err.message);
  return String(err);
}

const channels = new Map(); // channel id -> advertised channel
const subscriptions = new Map(); // subscription id -> advertised channel (kept after unadvertise)
const subscribedChannels = new Map(); // channel id -> subscription id
const readers = new WeakMap(); // advertised channel -> MessageReader | null (not cdr/ros2msg)
let messageCount = 0;
let stalled = false;
let opened = false;
let shuttingDown = false;

function readerFor(channel) {
  if (readers.has(channel)) return readers.get(channel);
  let reader = null;
  if (channel.encoding === "cdr" && channel.schemaEncoding === "ros2msg") {
    reader = ros2Reader(channel.schema);
  }
  readers.set(channel, reader);
  return reader;
}

function wantsTopic(topic) {
  return opts.subscribe.has("*") || opts.subscribe.has(topic);
}

const ws = new WebSocket(opts.url, SUBPROTOCOLS);
const client = new FoxgloveClient({ ws });

// Leave: close the connection ourselves (no "close" line for it), then exit.
function shutdown(code, why) {
  if (shuttingDown) return;
  shuttingDown = true;
  diag(`exiting (${why})`);
  const done = () => process.exit(code);
  if (stalled || ws.readyState !== WebSocket.OPEN) {
    ws.terminate();
    setImmediate(done);
    return;
  }
  ws.once("close", done);
  ws.close(1000, "done");
  setTimeout(() => {
    ws.terminate();
    done();
  }, 1000).unref();
}

client.on("open", () => {
  opened = true;
  emit({ event: "open", protocol: ws.protocol });
  if (opts.garbage) {
    ws.send(JSON.stringify({ op: "nonsense" }));
    ws.send(randomBytes(64));
    diag("sent a nonsense text frame and 64 random bytes in a binary frame");
  }
});

client.on("serverInfo", (info) => {
  emit({
    event: "server_info",
    name: info.name,
    capabilities: info.capabilities ?? [],
    supportedEncodings: info.supportedEncodings ?? [],
  });
});

client.on("status", (status) => {
  emit({ event: "status", level: status.level, message: status.message });
});

client.on("advertise", (advertised) => {
  for (const channel of advertised) {
    channels.set(channel.id, channel);
    emit({
      event: "advertise",
      id: channel.id,
      topic: channel.topic,
      encoding: channel.encoding,
      schemaName: channel.schemaName,
      schemaEncoding: channel.schemaEncoding ?? null,
    });
    const existing = subscribedChannels.get(channel.id);
    if (existing !== undefined) {
      subscriptions.set(existing, channel); // advertised again: the new schema applies
    } else if (wantsTopic(channel.topic) && !stalled) {
      const subscriptionId = client.subscribe(channel.id);
      subscriptions.set(subscriptionId, channel);
      subscribedChannels.set(channel.id, subscriptionId);
      diag(`subscribed to ${channel.topic} (channel ${channel.id}, subscription ${subscriptionId})`);
    }
  }
});

client.on("unadvertise", (channelIds) => {
  for (const id of channelIds) {
    const channel = channels.get(id);
    emit({ event: "unadvertise", id, topic: channel ? channel.topic : null });
    channels.delete(id);
    // The server drops the subscriptions of a channel it unadvertises. Messages it had queued
    // may still arrive after the unadvertisement: they are reported like the others.
    subscribedChannels.delete(id);
  }
});

client.on("message", ({ subscriptionId, timestamp, data }) => {
  if (stalled) return;
  const recvNs = wallClockNs().toString();
  const channel = subscriptions.get(subscriptionId);
  if (!channel) {
    diag(`message for unknown subscription ${subscriptionId}`);
    return;
  }
  if (!opts.decode) {
    emit({
      event: "message",
      topic: channel.topic,
      log_time_ns: timestamp.toString(),
      recv_ns: recvNs,
      size: data.byteLength,
    });
    messageCount++;
    if (opts.stallAfter !== null && messageCount >= opts.stallAfter) stall();
    return;
  }
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const line = {
    event: "message",
    topic: channel.topic,
    log_time_ns: timestamp.toString(),
    sha256: sha256Hex(bytes),
    decoded: null,
    recv_ns: recvNs,
  };
  try {
    const reader = readerFor(channel);
    if (reader) line.decoded = summarize(reader.readMessage(bytes));
    emit(line);
  } catch (err) {
    // Instead of the "message" line, with the same time and hash.
    emit({
      event: "decode_error",
      topic: channel.topic,
      error: errorText(err),
      log_time_ns: line.log_time_ns,
      sha256: line.sha256,
    });
  }
  messageCount++;
  if (opts.stallAfter !== null && messageCount >= opts.stallAfter) stall();
});

function stall() {
  stalled = true;
  // Stop reading from the TCP socket: the kernel buffers fill up and the server's sends block.
  if (typeof ws.pause === "function") ws.pause();
  else ws._socket?.pause();
  emit({ event: "stalled", messages: messageCount });
  diag(`stalled after ${messageCount} messages: no longer reading from the socket`);
}

client.on("error", (err) => {
  emit({ event: "error", error: errorText(err) });
});

client.on("close", (event) => {
  if (shuttingDown) return;
  emit({ event: "close", code: event.code, reason: event.reason ?? "" });
  if (!opened) {
    diag(`could not open ${opts.url}`);
    process.exit(1);
  }
  shutdown(0, "the server closed the connection");
});

// The test may stop us by closing our stdin; only a pipe or socket counts (not /dev/null).
let stdinStat = null;
try {
  stdinStat = fs.fstatSync(0);
} catch {
  stdinStat = null;
}
if (stdinStat && (stdinStat.isFIFO() || stdinStat.isSocket())) {
  process.stdin.on("data", () => {});
  process.stdin.on("end", () => shutdown(0, "stdin closed"));
  process.stdin.on("error", () => shutdown(0, "stdin error"));
  process.stdin.resume();
}

setTimeout(() => {
  if (!opened) {
    emit({ event: "error", error: `not connected after ${opts.seconds} s` });
    ws.terminate();
    process.exit(1);
  }
  shutdown(0, `${opts.seconds} s elapsed`);
}, opts.seconds * 1000);

process.on("SIGTERM", () => shutdown(0, "SIGTERM"));
process.on("SIGINT", () => shutdown(0, "SIGINT"));
