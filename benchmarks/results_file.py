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
