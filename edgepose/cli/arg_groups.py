"""Flags that mean one thing in every command, defined once (after Polygraphy's ``tools/args``).

Each function adds one concept's flag to a parser or argument group, with one spelling:

* ``--precision``: the precision(s) to use. A comma list where a command handles several
  (``edgepose-export``, ``edgepose-bench``), one value where it runs one model
  (``edgepose-run``, :func:`add_precision`). ``--precisions`` (``edgepose-bench``'s old
  spelling) is kept as an alias of the list form;
* ``--backend``: the inference backend(s), a comma list in ``edgepose-bench``; ``--backends``
  (its old spelling) is kept as an alias.
"""
from __future__ import annotations

from typing import Sequence

PRECISION_WORDS = "fp32, fp16, int8"


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
