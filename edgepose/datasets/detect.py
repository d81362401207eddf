"""Which format a dataset folder is in, from the files at its top (cheap: no parsing).

=============  ==========================================================
format         recognised by
=============  ==========================================================
cambridge      ``dataset_train.txt`` or ``dataset_test.txt``
7scenes        a ``seq-XX/`` folder holding ``frame-*.pose.txt``
colmap         ``cameras.txt``/``cameras.bin`` in the root, ``sparse/`` or ``sparse/0/``
nerf           ``transforms.json`` or ``transforms_train.json``
middlebury     a ``*_par.txt`` file
csv            ``poses.csv`` (or a single ``*.csv``) with the required header
=============  ==========================================================

Exactly one must match; otherwise the error names what matched and asks for ``--format``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List

from ..errors import ConfigError, DataFormatError
from . import colmap_model, csv_format, sevenscenes

FORMATS = ("cambridge", "7scenes", "colmap", "nerf", "middlebury", "csv")


def _seven(root: Path) -> bool:
    for d in sevenscenes.sequence_dirs(root):
        if next(d.glob("frame-*" + sevenscenes.POSE_SUFFIX), None) is not None:
            return True
    return False


def _csv(root: Path) -> bool:
    p = csv_format.find_csv(root)
    return p is not None and csv_format.header_ok(p)


RULES: Dict[str, Callable[[Path], bool]] = {
    "cambridge": lambda r: (r / "dataset_train.txt").is_file() or (r / "dataset_test.txt").is_file(),
    "7scenes": _seven,
    "colmap": lambda r: colmap_model.find_model(r) is not None,
    "nerf": lambda r: (r / "transforms.json").is_file() or (r / "transforms_train.json").is_file(),
    "middlebury": lambda r: next(r.glob("*_par.txt"), None) is not None,
    "csv": _csv,
}


def matching_formats(root: Path) -> List[str]:
    root = Path(root)
    return [name for name, rule in RULES.items() if rule(root)]


def detect_format(root: Path) -> str:
    """The one format whose marker files are in ``root``; raises DataFormatError otherwise."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError("expected a dataset folder; it does not exist or is not a folder", path=root)
    found = matching_formats(root)
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataFormatError(
            "no known dataset layout found: looked for dataset_train.txt (cambridge), seq-XX/*.pose.txt "
            "(7scenes), cameras.txt/.bin (colmap), transforms.json (nerf), *_par.txt (middlebury), "
            "poses.csv (csv)", path=root,
            hint="see `edgepose-inspect --help` for the layouts, or write a poses.csv for your own captures")
    raise DataFormatError(f"the folder matches several formats: {', '.join(found)}", path=root,
                          hint=f"pick one with --format {{{','.join(found)}}}")


def check_format_name(name: str) -> str:
    key = name.strip().lower().replace("-", "").replace("_", "")
    aliases = {"sevenscenes": "7scenes", "7scenes": "7scenes", "cambridgelandmarks": "cambridge",
               "instantngp": "nerf", "transforms": "nerf"}
    key = aliases.get(key, key)
    if key not in FORMATS:
        raise ConfigError(f"unknown dataset format {name!r}; expected one of {', '.join(FORMATS)}")
    return key
