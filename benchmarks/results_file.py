"""Appending one run's section to a results Markdown file (what every benchmark here ends with)."""
from __future__ import annotations

from pathlib import Path


def append_section(path: Path, header: str, text: str) -> None:
    """Print ``text`` and append it to ``path``, writing ``header`` first when the file is new."""
    print(text)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(header)
    with path.open("a") as fh:
        fh.write(text + "\n")


def load_now() -> str:
    """The 1/5/15-minute load averages, as the sections record them."""
    import os

    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


def section_title(script: str, argv, load: str) -> str:
    """A section's heading (UTC time, ``load`` when it started) and the command that produced it."""
    import datetime as _dt
    import sys

    return (f"\n## {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC (load {load})\n\n"
            f"Command: `python benchmarks/{script} {' '.join(sys.argv[1:] if argv is None else argv)}`\n")


def runs_parser(doc: str, name: str):
    """The argument parser of a benchmark over finished training runs (``--run`` repeated, ``--name``)."""
    import argparse

    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", required=True, help="a finished training run folder (repeat)")
    p.add_argument("--name", default=name, help="results/<name>.md (a section is appended)")
    return p
