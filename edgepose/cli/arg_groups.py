"""Flags that mean one thing in every command, defined once (after Polygraphy's ``tools/args``).

Each function adds one concept's flag(s) to a parser or argument group, with one spelling, one
``dest``, one type and one metavar; ``tests/e2e/test_cli_flag_words.py`` parses every CLI's
parser and fails when a flag spelled alike in two commands drifts apart. The concepts:

* ``bundle`` (positional, :func:`add_bundle`): the bundle folder a command reads;
* ``--backend`` / ``--precision``: ONE value where a command runs one model (``edgepose-run``,
  ``edgepose-ros2``: :func:`add_backend`, :func:`add_precision`), a comma LIST where it
  handles several (``edgepose-bench``; ``edgepose-export`` for precisions:
  :func:`add_backend_list`, :func:`add_precision_list`). This list-vs-one difference is the
  only documented drift. ``--precisions`` / ``--backends`` (``edgepose-bench``'s old
  spellings) stay as aliases of the list forms, said so in ``--help``;
* ``--batch N`` (:func:`add_batch`): frames per inference. For ``edgepose-export`` that is
  the graph's (and its engines') input batch, for ``edgepose-bench`` how many frames each
  timed inference takes. ``edgepose-train --batch-size`` is a different concept on purpose
  (frames per optimiser step and process) and keeps its own word;
* ``--threads N`` (:func:`add_threads`): CPU threads, 0 = the library's default;
* the runner's settings of a streaming command (:func:`add_runner_settings`: ``--strict``,
  ``--cuda-graph``) and its stream options (:func:`add_stream_options`: ``--filter``,
  ``--camera-graph``), shared by ``edgepose-run`` and ``edgepose-ros2``;
* datasets (:func:`add_dataset_options`: ``--format``, ``--split-policy``) for train, bench
  and inspect; ``--split`` and ``--max-frames`` (:func:`add_split`, :func:`add_max_frames`).

The ROS flags both ``edgepose-run`` and ``edgepose-ros2`` take (``--frame-id``,
``--camera-to-base``, ``--pose-topic``) are defined in ``edgepose.runtime.ros.options``.
``--out`` names each command's own output (a poses file, a report folder, a run folder, a
bundle), so its metavar and type say which; it is not one concept.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

from ..argtypes import batch_size, positive_int, threads
from ..errors import ConfigError
from ..records import SPLITS

PRECISION_WORDS = "fp32, fp16, int8"
#: --filter's words (edgepose.runtime.filter.make_filter reads them)
FILTERS = ("none", "kalman")
#: --camera-graph's words
CAMERA_GRAPH = ("auto", "off")


def add_bundle(group, optional: bool = False, extra: str = "") -> None:
    """The positional ``bundle`` (into ``args.bundle``); ``optional``: may be given another way."""
    kwargs = {"nargs": "?", "default": ""} if optional else {}
    group.add_argument("bundle", help="bundle folder (with edgepose.json), made by edgepose-export" + extra, **kwargs)


def add_precision_list(group, default: str) -> None:
    """``--precision LIST`` (alias ``--precisions``), parsed into ``args.precision`` as text."""
    group.add_argument("--precision", "--precisions", dest="precision", default=None, metavar="LIST",
                       help=f"comma list of {PRECISION_WORDS} (default: {default}); "
                            "--precisions is the same flag (older spelling)")


def add_precision(group, choices: Sequence[str], default_help: str) -> None:
    """``--precision P``: the one precision a command runs, into ``args.precision``."""
    group.add_argument("--precision", default=None, choices=tuple(choices), help=default_help)


def add_backend_list(group, names: Sequence[str]) -> None:
    """``--backend LIST`` (alias ``--backends``), parsed into ``args.backend`` as text."""
    group.add_argument("--backend", "--backends", dest="backend", default=None, metavar="LIST",
                       help=f"comma list of {', '.join(names)} (default: all available); "
                            "--backends is the same flag (older spelling)")


def add_backend(group, names: Sequence[str]) -> None:
    """``--backend NAME``: the one backend a command runs (``auto`` resolves it per bundle and machine)."""
    group.add_argument("--backend", default="auto", metavar="NAME",
                       help="auto (default: a TensorRT engine built for this device, else ONNX Runtime, else "
                            "torch), " + ", ".join(names))


def add_batch(group, default: int = 1) -> None:
    """``--batch N``: frames per inference (see the module docstring)."""
    group.add_argument("--batch", type=batch_size, default=default, metavar="N",
                       help=f"frames per inference (default {default}): the input batch of the exported graph "
                            "and its engines; in edgepose-bench the frames each timed inference takes. Not "
                            "edgepose-train's --batch-size (frames per optimiser step)")


def add_threads(group, text: str = "intra-op CPU threads of ONNX Runtime / torch (0 = the library's default)",
                default=0) -> None:
    """``--threads N``: CPU threads (0..1024; 0 = the library's default); ``default`` may be
    ``argparse.SUPPRESS``."""
    group.add_argument("--threads", type=threads, default=default, metavar="N", help=text)


def add_runner_settings(group) -> None:
    """``--strict`` and ``--cuda-graph``: how a streaming command opens its runner."""
    group.add_argument("--strict", action="store_true", help="fail instead of falling back to another precision")
    group.add_argument("--cuda-graph", action="store_true", help="TensorRT: replay the inference as a CUDA graph")


def add_stream_options(group) -> None:
    """``--filter`` and ``--camera-graph``: what a streaming command does around inference."""
    group.add_argument("--filter", default="none", choices=FILTERS,
                       help="kalman: constant-velocity position filter weighted by each frame's sigma, "
                            "outliers gated, rotation slerp-smoothed (default none)")
    group.add_argument("--camera-graph", default="auto", choices=CAMERA_GRAPH,
                       help="auto (default): frames whose size has a camera-resolution graph in the bundle "
                            "(edgepose-export --camera-size) go to it and the host only copies them; off: "
                            "preprocess every frame on the host")


def add_dataset_options(group, formats: Sequence[str], split_default: str = "the format's own split",
                        default=None) -> None:
    """``--format`` (checked by the reader, aliases accepted) and ``--split-policy``;
    ``default``: ``argparse.SUPPRESS`` where a command tells given flags from defaults."""
    group.add_argument("--format", default=default, metavar="FORMAT",
                       help=f"dataset format: {', '.join(formats)} (default: detected)")
    group.add_argument("--split-policy", default=default, metavar="POLICY",
                       help=f"every:K, sequence:NAME1,NAME2 or given (default: {split_default}; see "
                            "edgepose-inspect --help)")


def add_split(group, text: str) -> None:
    """``--split train|test`` (default test)."""
    group.add_argument("--split", default="test", choices=SPLITS, help=text + " (default test)")


def add_max_frames(group, text: str) -> None:
    """``--max-frames N``."""
    group.add_argument("--max-frames", type=positive_int, default=None, metavar="N", help=text)


def check_data_folder(path: Union[str, Path], what: str = "DATA") -> None:
    """:class:`ConfigError` (exit 2 through ``guarded``) when a dataset argument names no folder:
    a mistyped path is a bad argument, not a dataset with problems."""
    if not Path(path).is_dir():
        raise ConfigError(f"{what} {path}: no such dataset folder",
                          hint="give the dataset's root folder (edgepose-inspect DATA shows what is read there), "
                               "or render the built-in scene with edgepose-synth OUT")
