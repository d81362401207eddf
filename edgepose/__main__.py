"""``python -m edgepose <command> [args]``: the same commands as the ``edgepose-*`` scripts."""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "synth": ("edgepose.cli.synth", "render the built-in synthetic scene (7-Scenes layout)"),
    "inspect": ("edgepose.cli.inspect", "check a dataset before training"),
    "train": ("edgepose.train.cli", "train a pose regressor (two-stage recipe)"),
    "export": ("edgepose.export.cli", "export ONNX / FP16 / INT8 / TensorRT into a bundle"),
    "run": ("edgepose.runtime.cli", "stream frames through a bundle"),
    "ros2": ("edgepose.runtime.ros.node", "the same as a ROS 2 node (needs a ROS 2 install for rclpy)"),
    "bench": ("edgepose.runtime.bench.cli", "accuracy vs latency for every backend and precision"),
    "demo": ("edgepose.cli.demo", "synthetic scene -> train -> export -> bench, end to end"),
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m edgepose <command> [args]   (or edgepose-<command>)\n\ncommands:")
        for name, (_, text) in COMMANDS.items():
            print(f"  {name:<8} {text}")
        print("\n`python -m edgepose <command> --help` explains each one.")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"edgepose: unknown command {name!r}; expected one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
