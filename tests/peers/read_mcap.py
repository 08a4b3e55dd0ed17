#!/usr/bin/env python3
"""Reads MCAP files with independent readers and prints what they see, as JSON.

Used by tests/recorder.rs: `read_mcap.py FILE` prints one JSON object with
- `profile`, `library`, `has_summary`, `statistics` (message count, channel counts), `metadata`;
- `channels`: topic, message encoding, schema name/encoding, channel metadata;
- `messages`: per message (file order) topic, sequence, log/publish time, schema name, size,
  sha256 of the data, and `decoded` fields from mcap-ros2-support's decoder for ros2msg/cdr
  and from Foxglove's mcap-protobuf-support for protobuf (or `decode_error`);
- `rosbags`: for a `ros2` profile file, rosbags' AnyReader: `messages` (topic, timestamp,
  decoded fields) and `type_hashes` (RIHS01 computed by rosbags from the stored definitions),
  or `error`.

Byte arrays are shown as {"len", "sha256"}; other arrays as lists.
"""

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

from mcap.reader import NonSeekingReader, SeekingReader
from google.protobuf.json_format import MessageToDict
from mcap_protobuf.decoder import DecoderFactory as ProtobufDecoderFactory
from mcap_ros2.decoder import DecoderFactory as Ros2DecoderFactory


class DecoderFactory:
    """mcap-ros2-support's decoders for cdr, then mcap-protobuf-support's for protobuf."""

    def __init__(self):
        self.factories = [Ros2DecoderFactory(), ProtobufDecoderFactory()]

    def decoder_for(self, message_encoding, schema):
        for factory in self.factories:
            decoder = factory.decoder_for(message_encoding, schema)
            if decoder is not None:
                return decoder
        return None


def plain(value):
    """A JSON-friendly copy of a decoded message (mcap-ros2 objects, rosbags dataclasses)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return {"len": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "DESCRIPTOR") and hasattr(value, "ListFields"):  # a protobuf message
        return MessageToDict(value, preserving_proto_field_name=True)
    if hasattr(value, "dtype") and hasattr(value, "tolist"):  # numpy array
        if str(value.dtype) in ("uint8", "int8"):
            return plain(value.tobytes())
        return value.tolist()
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, int) and 0 <= v < 256 for v in value) and len(value) > 64:
            return plain(bytes(value))
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value):
        # rosbags declares a message's constants and __msgtype__ as ClassVar in string
        # annotations, which dataclasses takes for fields: leave them out.
        hints = getattr(type(value), "__annotations__", {})
        names = [
            f.name
            for f in dataclasses.fields(value)
            if not str(hints.get(f.name, "")).startswith(("ClassVar", "typing.ClassVar"))
        ]
    else:
        names = list(getattr(value, "__slots__", ())) or [
            n for n in vars(value) if not n.startswith("_")
        ]
    return {n: plain(getattr(value, n)) for n in names if not n.startswith("_")}


def read_mcap(path):
    out = {"path": str(path)}
    factory = DecoderFactory()
    decoders = {}
    with open(path, "rb") as stream:
        try:
            reader = SeekingReader(stream)
            summary = reader.get_summary()
        except Exception as err:  # noqa: BLE001 - no footer: a killed recording
            out["summary_error"] = f"{type(err).__name__}: {err}"
            stream.seek(0)
            reader = NonSeekingReader(stream)
            summary = None
        out["has_summary"] = summary is not None
        if summary is None:
            return read_linear(out, reader, factory, decoders)
        header = reader.get_header()
        out["profile"] = header.profile
        out["library"] = header.library
        if summary is not None and summary.statistics is not None:
            stats = summary.statistics
            out["statistics"] = {
                "message_count": stats.message_count,
                "channel_count": stats.channel_count,
                "chunk_count": stats.chunk_count,
                "channel_message_counts": {
                    str(k): v for k, v in stats.channel_message_counts.items()
                },
            }
        out["metadata"] = [
            {"name": m.name, "metadata": dict(m.metadata)} for m in reader.iter_metadata()
        ]
        channels = {}
        messages = []
        for schema, channel, message in reader.iter_messages(log_time_order=False):
            channels[channel.id] = {
                "id": channel.id,
                "topic": channel.topic,
                "message_encoding": channel.message_encoding,
                "schema_name": schema.name if schema else None,
                "schema_encoding": schema.encoding if schema else None,
                "metadata": dict(channel.metadata),
            }
            messages.append(describe(schema, channel, message, factory, decoders))
        out["channels"] = sorted(channels.values(), key=lambda c: c["id"])
        out["messages"] = messages
    if out["profile"] == "ros2" and out["has_summary"]:
        out["rosbags"] = read_rosbags(path)
    return out


def read_linear(out, reader, factory, decoders):
    """A file without a summary: every complete message, then the error at the cut."""
    messages = []
    out["messages"] = messages
    try:
        for schema, channel, message in reader.iter_messages(log_time_order=False):
            messages.append(describe(schema, channel, message, factory, decoders))
    except Exception as err:  # noqa: BLE001 - the cut-off tail
        out["read_error"] = f"{type(err).__name__}: {err}"
    return out


def describe(schema, channel, message, factory, decoders):
    entry = {
        "topic": channel.topic,
        "channel_id": channel.id,
        "sequence": message.sequence,
        "log_time": message.log_time,
        "publish_time": message.publish_time,
        "schema": schema.name if schema else None,
        "size": len(message.data),
        "sha256": hashlib.sha256(message.data).hexdigest(),
    }
    key = channel.id
    if key not in decoders:
        try:
            decoders[key] = factory.decoder_for(channel.message_encoding, schema)
        except Exception as err:  # noqa: BLE001 - report, do not stop
            decoders[key] = err
    decoder = decoders[key]
    if callable(decoder):
        try:
            entry["decoded"] = plain(decoder(message.data))
        except Exception as err:  # noqa: BLE001
            entry["decode_error"] = f"{type(err).__name__}: {err}"
    elif isinstance(decoder, Exception):
        entry["decode_error"] = f"{type(decoder).__name__}: {decoder}"
    return entry


def read_rosbags(path):
    try:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        result = []
        with AnyReader([Path(path)], default_typestore=get_typestore(Stores.EMPTY)) as reader:
            for connection, timestamp, raw in reader.messages():
                result.append(
                    {
                        "topic": connection.topic,
                        "timestamp": timestamp,
                        "msgtype": connection.msgtype,
                        "decoded": plain(reader.deserialize(raw, connection.msgtype)),
                    }
                )
            hashes = {c.msgtype: reader.typestore.hash_rihs01(c.msgtype) for c in reader.connections}
        return {"messages": result, "type_hashes": hashes}
    except Exception as err:  # noqa: BLE001 - the test reports it
        return {"error": f"{type(err).__name__}: {err}"}


def main():
    if len(sys.argv) != 2:
        print("usage: read_mcap.py FILE", file=sys.stderr)
        return 2
    json.dump(read_mcap(sys.argv[1]), sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
