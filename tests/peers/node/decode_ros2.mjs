#!/usr/bin/env node
// Decodes ROS 2 messages with the Foxglove app's decoders (ros2_decode.mjs), for tests that
// check what a recording holds decodes in Foxglove.
//
//   node decode_ros2.mjs < requests
//
// stdin: one JSON object per line, {"topic":..,"schema":"<ros2msg text>","data":"<CDR, hex>"}.
// stdout: one JSON object per input line, in order: {"topic":..,"decoded":{..}} (the shape of
// ros2_decode.mjs's summarize) or {"topic":..,"error":".."}.
import readline from "node:readline";

import { ros2Reader, summarize } from "./ros2_decode.mjs";

const readers = new Map(); // schema text -> MessageReader
const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  const { topic, schema, data } = JSON.parse(line);
  let out;
  try {
    if (!readers.has(schema)) readers.set(schema, ros2Reader(schema));
    const decoded = readers.get(schema).readMessage(Buffer.from(data, "hex"));
    out = { topic, decoded: summarize(decoded) };
  } catch (err) {
    out = { topic, error: err instanceof Error ? err.message : String(err) };
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}
