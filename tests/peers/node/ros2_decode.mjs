// The Foxglove app's ROS 2 decoders (@foxglove/rosmsg + @foxglove/rosmsg2-serialization), and
// the JSON shape the tests compare decoded messages in. Shared by foxglove_client.mjs (live
// view) and decode_ros2.mjs (recordings).
import { createHash } from "node:crypto";

import rosmsg from "@foxglove/rosmsg";
import rosmsg2 from "@foxglove/rosmsg2-serialization";

const { parse: parseMessageDefinition } = rosmsg;
const { MessageReader } = rosmsg2;

export function sha256Hex(bytes) {
  return createHash("sha256").update(bytes).digest("hex");
}

// A reader of CDR messages of the type a `ros2msg` schema text defines, as the app builds it.
export function ros2Reader(schemaText) {
  return new MessageReader(parseMessageDefinition(schemaText, { ros2: true }));
}

function isByteArray(value) {
  return (
    value instanceof Uint8Array || value instanceof Int8Array || value instanceof Uint8ClampedArray
  );
}

// A JSON-friendly summary of a decoded message, in the shape tests/peers/ros2_publisher.py and
// read_mcap.py print: byte arrays (uint8[]/int8[], e.g. Image.data) become {"len","sha256"},
// other numeric arrays plain arrays, bigints decimal strings, nested messages plain objects
// (header -> {"stamp":{"sec","nanosec"},"frame_id"}).
export function summarize(value) {
  if (typeof value === "bigint") return value.toString();
  if (value === null || value === undefined) return null;
  if (typeof value === "number") return Number.isFinite(value) ? value : String(value);
  if (typeof value !== "object") return value;
  if (isByteArray(value)) {
    const bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    return { len: value.length, sha256: sha256Hex(bytes) };
  }
  if (ArrayBuffer.isView(value)) return Array.from(value, summarize);
  if (Array.isArray(value)) return value.map(summarize);
  const out = {};
  for (const [key, field] of Object.entries(value)) out[key] = summarize(field);
  return out;
}
