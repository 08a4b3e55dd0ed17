#!/usr/bin/env python3
"""The node commands that launch/bridge.launch.py and launch/bridge.launch.xml describe, as
JSON, for tests/ros2.rs (no `ros2 launch` exists as a wheel, so the files are read, not run).

`launch_commands.py LAUNCH_DIR NAME=VALUE...` prints [{"file", "package", "executable",
"name", "args", "env", "declared"}, ...] with each launch argument replaced by the VALUE given
for it (or its default), the way ros2 launch substitutes `config:=...`.
"""

import ast
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


ARGS = {}


def python_value(node):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List):
        return [python_value(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {python_value(k): python_value(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "LaunchConfiguration":
        return ARGS[python_value(node.args[0])]
    raise ValueError(f"unexpected expression {ast.dump(node)}")


def from_python(path):
    tree = ast.parse(path.read_text(), str(path))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    declared = []
    for call in calls:
        if getattr(call.func, "id", "") == "DeclareLaunchArgument":
            name = python_value(call.args[0])
            declared.append(name)
            for k in call.keywords:
                if k.arg == "default_value":
                    ARGS.setdefault(name, python_value(k.value))
    nodes = []
    for call in calls:
        if getattr(call.func, "id", "") != "Node":
            continue
        kw = {k.arg: python_value(k.value) for k in call.keywords}
        nodes.append({
            "file": path.name,
            "package": kw["package"],
            "executable": kw["executable"],
            "name": kw.get("name"),
            "args": kw.get("arguments", []),
            "env": kw.get("additional_env", {}),
            "declared": declared,
        })
    return nodes


def from_xml(path):
    root = ET.parse(path).getroot()
    assert root.tag == "launch", root.tag
    declared = [a.get("name") for a in root.findall("arg")]
    for a in root.findall("arg"):
        if a.get("default") is not None:
            ARGS.setdefault(a.get("name"), a.get("default"))

    def sub(text):
        for name, value in ARGS.items():
            text = text.replace(f"$(var {name})", value)
        return text

    return [
        {
            "file": path.name,
            "package": node.get("pkg"),
            "executable": node.get("exec"),
            "name": node.get("name"),
            "args": sub(node.get("args", "")).split(),
            "env": {e.get("name"): sub(e.get("value")) for e in node.findall("env")},
            "declared": declared,
        }
        for node in root.findall("node")
    ]


def main():
    directory = Path(sys.argv[1])
    ARGS.update(arg.split("=", 1) for arg in sys.argv[2:])
    nodes = from_python(directory / "bridge.launch.py") + from_xml(directory / "bridge.launch.xml")
    json.dump(nodes, sys.stdout)


if __name__ == "__main__":
    main()
