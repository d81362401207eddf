"""Where a command may write: an output is never one of its inputs, and a folder is ours only
when its ownership record says so.

:func:`check_outputs` is called by every command before it writes anything. It resolves each
output and each input once (symbolic links of the path and of its parents followed, ``..``
collapsed: the same rule the dataset readers apply to their files) and refuses, naming both
options, an output that

* is an input, or lies inside an input folder (``edgepose-run B --out B/edgepose.json``,
  ``--out SRC/0000.png``, ``--csv DATA/poses.csv``);
* is the same file as another output (``--out x --csv x`` would write one over the other).

Folders a command creates carry an ownership record, :data:`OWNER_FILE` (JSON: the tool and
the files it wrote); a folder without one, or with another tool's, is not ours to delete or
replace (:func:`read_owner`, :func:`write_owner`). A name that merely looks like ours
(``scene.json``, ``*.partial``) proves nothing.
"""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Union

from .atomic import atomic_write_json
from .errors import ConfigError

PathLike = Union[str, Path]
#: the ownership record a command leaves in each folder it creates
OWNER_FILE = ".edgepose-owner.json"


def resolved(path: PathLike, option: str = "path") -> Path:
    """``path`` made absolute with every symbolic link (of it and its parents) followed.

    :class:`ConfigError` (naming ``option``) for a name longer than the file system allows,
    a symbolic-link loop, or a NUL in the name, instead of an ``OSError`` traceback later."""
    text = str(path)
    if "\x00" in text:
        raise ConfigError(f"{option} {text!r}: a NUL character cannot be in a file name")
    for part in Path(text).parts:
        if len(os.fsencode(part)) > 255:
            raise ConfigError(f"{option} {text[:60]}...: the name {part[:40]}... is {len(os.fsencode(part))} "
                              "bytes; file systems allow 255", hint="use a shorter name")
    try:
        os.stat(text)
    except OSError as exc:
        if exc.errno != errno.ENOENT:  # absent is fine: outputs are created
            why = "a symbolic-link loop" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
            raise ConfigError(f"{option} {text}: {why}", hint="name a real file or folder") from None
    except ValueError as exc:  # pragma: no cover - embedded NUL, refused above
        raise ConfigError(f"{option} {text!r}: {exc}") from None
    return Path(os.path.realpath(text))


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_outputs(outputs: Mapping[str, Optional[PathLike]], inputs: Mapping[str, Optional[PathLike]],
                  same_as_input_ok: Optional[Mapping[str, str]] = None) -> Dict[str, Path]:
    """``{option: resolved path}`` of the outputs, after refusing any that is (or is inside)
    an input, or that is the same file as another output.

    ``outputs``/``inputs`` map an option name (``"--out"``, ``"BUNDLE"``) to a path; ``None``,
    ``""`` and ``"-"`` (stdout) are skipped, and so are inputs that are not on disk (a camera
    index, a pipeline). ``same_as_input_ok`` names the pairs ``{output: input}`` where writing
    *into* the input is the command's job (``edgepose-export BUNDLE`` adding engines in place).
    """
    ins: List[tuple] = []
    for name, p in inputs.items():
        if p in (None, "", "-"):
            continue
        real = resolved(p, name)
        if os.path.lexists(str(p)):
            ins.append((name, real))
    outs: Dict[str, Path] = {}
    for opt, p in outputs.items():
        if p in (None, "", "-"):
            continue
        real = resolved(p, opt)
        for name, src in ins:
            if (same_as_input_ok or {}).get(opt) == name and real == src:
                continue
            if _inside(real, src):
                where = "is" if real == src else f"is inside {name}"
                raise ConfigError(f"{opt} {p} {where} {src if real != src else 'the ' + name + ' ' + str(src)}: "
                                  f"writing it would overwrite what this command reads",
                                  hint=f"write {opt} somewhere outside {src}")
        for other, q in outs.items():
            if q == real:
                raise ConfigError(f"{opt} {p} and {other} name the same file ({real}): one would be written over "
                                  "the other", hint=f"give {opt} and {other} different paths")
        outs[opt] = real
    return outs


def read_owner(folder: PathLike) -> Optional[dict]:
    """The ownership record of ``folder`` (``{"tool", "files", ...}``), or ``None`` when it has
    none or it is not one we wrote (a link, not a JSON object)."""
    p = Path(folder) / OWNER_FILE
    if p.is_symlink() or not p.is_file():
        return None
    try:
        record = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (isinstance(record, dict) and isinstance(record.get("tool"), str)
            and isinstance(record.get("files", []), list)):
        return None
    return record


def write_owner(folder: PathLike, tool: str, files: Optional[List[str]] = None, **extra) -> Path:
    """Record that ``tool`` created ``folder`` and wrote ``files`` (relative paths) there."""
    record = {"tool": tool, "files": sorted(files or []), **extra}
    return atomic_write_json(Path(folder) / OWNER_FILE, record)


def owned_files(folder: PathLike, tool: str) -> Optional[List[str]]:
    """The files ``tool`` recorded writing in ``folder`` (those still inside it, no links),
    or ``None`` when ``folder`` is not ``tool``'s."""
    record = read_owner(folder)
    if record is None or record["tool"] != tool:
        return None
    root = Path(folder)
    out = []
    for rel in record.get("files", []):
        if not isinstance(rel, str) or rel.startswith("/") or ".." in Path(rel).parts:
            continue
        if (root / rel).is_symlink() or not (root / rel).exists():
            continue
        out.append(rel)
    return out
