#!/usr/bin/env python3
"""Reference CDR bytes and ros2msg definitions from real ROS 2 (rclpy, PyPI Kilted wheels).

Run with the venv python from scripts/setup-ros2.sh (its ros_wheels_bootstrapper .pth sets
LD_LIBRARY_PATH and re-executes once; stdin survives that; AMENT_PREFIX_PATH defaults to the
venv). Used by tests/codec.rs.

stdin, one JSON document:
  {"messages": [{"type": "sensor_msgs/msg/Image", "fields": {...}, "ours": "<hex>"}, ...],
   "types": ["sensor_msgs/msg/Image", ...]}
  `fields` holds every field of the type by its ROS name (nested messages as objects, uint8[]
  as a list of ints); `ours` (optional) is the CDR the Rust codec produced for it.

stdout, one JSON document:
  {"messages": [{"type": ..., "cdr": "<hex>", "padding": [offsets], "padding_nonzero": n,
                 "ours_decodes_equal": true|false|null}, ...],
   "types": {"sensor_msgs/msg/Image": {"definition": "...", "hash": "RIHS01_..."}, ...}}
  `cdr` is rclpy.serialization.serialize_message(msg) with its alignment padding bytes set to
  0: Fast CDR leaves padding uninitialized (arbitrary heap bytes). `padding` lists those body
  offsets (after the 4-byte header), found by walking the message with its rosidl type
  information; `padding_nonzero` counts how many of them were not 0 in rclpy's output.
  For bounded (fixed-size) types serialize_message appends up to 3 more bytes, rounding the
  length to 4 (rmw_fastrtps reports its size estimate); a DDS publisher sends the message
  without them. `cdr` omits them and `trailing_padding` says how many there were.
  `ours_decodes_equal`: rclpy deserialized `ours` into a message equal to the one it built.
  `definition` is assembled from the ament index the way rosbag2's
  LocalMessageDefinitionSource does; `hash` is the RIHS01 hash from share/<pkg>/msg/<T>.json.
"""

import importlib
import json
import os
import re
import sys

# The venv is the ROS prefix (share/ament_index, share/<pkg>/msg).
if not os.environ.get("AMENT_PREFIX_PATH"):
    os.environ["AMENT_PREFIX_PATH"] = sys.prefix

from ament_index_python.packages import get_package_share_directory
from rclpy.serialization import deserialize_message, serialize_message
from rosidl_parser.definition import (
    AbstractNestedType,
    AbstractSequence,
    AbstractString,
    AbstractWString,
    Array,
    BasicType,
    NamespacedType,
)

PRIMITIVE_SIZES = {
    "boolean": 1, "octet": 1, "char": 1, "uint8": 1, "int8": 1,
    "uint16": 2, "int16": 2, "wchar": 2,
    "uint32": 4, "int32": 4, "float": 4,
    "uint64": 8, "int64": 8, "double": 8,
}


def message_class(type_name):
    """`pkg/msg/Type` -> the generated Python class."""
    pkg, ns, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{ns}"), name)


def namespaced_class(t):
    return getattr(importlib.import_module(".".join(t.namespaces)), t.name)


def build(cls, fields):
    """An instance of `cls` from a dict holding exactly its fields."""
    names = list(cls.get_fields_and_field_types())
    if set(fields) != set(names):
        raise ValueError(f"{cls.__name__}: fields {sorted(fields)} != ROS fields {sorted(names)}")
    msg = cls()
    for name, slot_type in zip(names, cls.SLOT_TYPES):
        setattr(msg, name, convert(slot_type, fields[name]))
    return msg


def convert(slot_type, value):
    if isinstance(slot_type, NamespacedType):
        return build(namespaced_class(slot_type), value)
    if isinstance(slot_type, AbstractNestedType):
        inner = slot_type.value_type
        if isinstance(inner, BasicType) and inner.typename in ("uint8", "octet"):
            return bytes(value)
        return [convert(inner, item) for item in value]
    return value


class PaddingWalker:
    """Body offsets of the alignment padding in a message's CDR (XCDR1, as Fast CDR writes)."""

    def __init__(self):
        self.pos = 0
        self.padding = []

    def align(self, n):
        while self.pos % n:
            self.padding.append(self.pos)
            self.pos += 1

    def message(self, msg):
        for name, slot_type in zip(msg.get_fields_and_field_types(), msg.SLOT_TYPES):
            self.value(slot_type, getattr(msg, name))

    def value(self, slot_type, value):
        if isinstance(slot_type, BasicType):
            size = PRIMITIVE_SIZES[slot_type.typename]
            self.align(size)
            self.pos += size
        elif isinstance(slot_type, AbstractWString):
            raise ValueError("wstring is not supported")
        elif isinstance(slot_type, AbstractString):
            self.align(4)
            self.pos += 4 + len(value.encode("utf-8")) + 1
        elif isinstance(slot_type, NamespacedType):
            self.message(value)
        elif isinstance(slot_type, (Array, AbstractSequence)):
            if isinstance(slot_type, AbstractSequence):
                self.align(4)
                self.pos += 4
            inner = slot_type.value_type
            if isinstance(inner, BasicType):
                # Elements of one primitive type: aligned once, only if there are any.
                if len(value):
                    size = PRIMITIVE_SIZES[inner.typename]
                    self.align(size)
                    self.pos += size * len(value)
            else:
                for item in value:
                    self.value(inner, item)
        else:
            raise ValueError(f"unsupported slot type {slot_type!r}")


# rosbag2_cpp/src/rosbag2_cpp/message_definitions/local_message_definition_source.cpp
MSG_FIELD_TYPE_REGEX = re.compile(r"(?:^|\n)\s*([a-zA-Z0-9_/]+)(?:\[[^\]]*\])?\s+")
PRIMITIVE_TYPES = {
    "bool", "byte", "char", "float32", "float64", "int8", "uint8",
    "int16", "uint16", "int32", "uint32", "int64", "uint64", "string",
}
DELIMITER = "=" * 80 + "\n"


def msg_text(type_name):
    parts = type_name.split("/")
    pkg, ns, name = (parts[0], "msg", parts[1]) if len(parts) == 2 else parts
    path = os.path.join(get_package_share_directory(pkg), ns, name + ".msg")
    with open(path, encoding="utf-8", newline="") as f:
        return pkg, f.read()


def dependencies(text, pkg):
    deps = set()
    for match in MSG_FIELD_TYPE_REGEX.finditer(text):
        t = match.group(1)
        if t in PRIMITIVE_TYPES:
            continue
        deps.add(t if "/" in t else f"{pkg}/{t}")
    return sorted(deps)


def full_definition(root):
    seen = set()

    def append(type_name, depth):
        if depth <= 0:
            raise RuntimeError(f"recursion too deep resolving {root}")
        pkg, text = msg_text(type_name)
        result = text
        for dep in dependencies(text, pkg):
            if dep not in seen:
                seen.add(dep)
                result += "\n" + DELIMITER + "MSG: " + dep + "\n" + append(dep, depth - 1)
        return result

    return append(root, 50)


def type_hash(type_name):
    pkg, ns, name = type_name.split("/")
    path = os.path.join(get_package_share_directory(pkg), ns, name + ".json")
    with open(path, encoding="utf-8") as f:
        for entry in json.load(f)["type_hashes"]:
            if entry["type_name"] == type_name:
                return entry["hash_string"]
    raise KeyError(f"no hash for {type_name} in {path}")


def main():
    request = json.load(sys.stdin)
    out_messages = []
    for item in request.get("messages", []):
        cls = message_class(item["type"])
        msg = build(cls, item["fields"])
        raw = bytearray(serialize_message(msg))
        walker = PaddingWalker()
        walker.message(msg)
        # rmw_serialize reports the estimated size, which for bounded (fixed-size) types is
        # rounded up to 4 bytes; the DDS wire payload (what subscribers and rosbag2 get) ends
        # after the last field. Drop that tail so `cdr` is the wire form.
        trailing = len(raw) - 4 - walker.pos
        if trailing not in (0, -walker.pos % 4):
            raise RuntimeError(
                f"{item['type']}: walked {walker.pos} body bytes, rclpy wrote {len(raw) - 4}"
            )
        del raw[4 + walker.pos:]
        nonzero = 0
        for offset in walker.padding:
            nonzero += raw[4 + offset] != 0
            raw[4 + offset] = 0
        # Zeroing touched only padding: the message still decodes to itself.
        if deserialize_message(bytes(raw), cls) != msg:
            raise RuntimeError(f"{item['type']}: zeroing padding changed the message")
        ours_equal = None
        if item.get("ours") is not None:
            try:
                ours_equal = deserialize_message(bytes.fromhex(item["ours"]), cls) == msg
            except Exception as err:  # noqa: BLE001 - reported to the test as a mismatch
                print(f"ros2_reference: rclpy cannot decode ours: {err}", file=sys.stderr)
                ours_equal = False
        out_messages.append({
            "type": item["type"],
            "cdr": raw.hex(),
            "padding": walker.padding,
            "padding_nonzero": nonzero,
            "trailing_padding": trailing,
            "ours_decodes_equal": ours_equal,
        })
    types = {
        name: {"definition": full_definition(name), "hash": type_hash(name)}
        for name in request.get("types", [])
    }
    json.dump({"messages": out_messages, "types": types}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
