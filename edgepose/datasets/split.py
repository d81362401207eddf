"""Train/test split policy for formats without a split of their own (or to override one).

Policies (strings, as given to ``--split-policy`` and ``load_dataset(split_policy=...)``):

``every:K``
    Sort the frames by image path (relative to the dataset root, plain string order) and
    number them from 0; frame ``i`` goes to **test** when ``i % K == 0``, the rest to train.
    Deterministic, spreads test frames over the whole capture, and puts the first frame in
    test. This is the default (``every:5``) for formats without a split; for the 363-image
    Middlebury dino set it gives 290 train / 73 test.
``sequence:NAME1,NAME2``
    Frames whose ``sequence`` (the image's folder, e.g. ``seq-03`` or ``seq2``) is listed go
    to test, all others to train. Unknown names are an error listing the known ones.
``given``
    Keep the format's own split (the default when the format has one).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

from ..errors import ConfigError
from ..records import FrameRecord

DEFAULT_EVERY = 5


@dataclass(frozen=True)
class SplitPolicy:
    kind: str                       # "every" | "sequence" | "given"
    every: int = DEFAULT_EVERY
    sequences: Tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.kind == "every":
            return f"every:{self.every}"
        if self.kind == "sequence":
            return "sequence:" + ",".join(self.sequences)
        return "given"


DEFAULT_POLICY = SplitPolicy("every", DEFAULT_EVERY)


def parse_split_policy(text) -> SplitPolicy:
    """``"every:5"`` / ``"sequence:seq-03,seq-05"`` / ``"given"`` -> :class:`SplitPolicy`."""
    if isinstance(text, SplitPolicy):
        return text
    s = str(text).strip()
    kind, _, arg = s.partition(":")
    kind = kind.strip().lower()
    if kind == "given" and not arg:
        return SplitPolicy("given")
    if kind == "every":
        try:
            k = int(arg)
        except ValueError:
            k = 0
        if k < 2:
            raise ConfigError(f"split policy {s!r}: expected every:K with an integer K >= 2 (every K-th frame is test)")
        return SplitPolicy("every", k)
    if kind == "sequence":
        names = tuple(n.strip() for n in arg.split(",") if n.strip())
        if not names:
            raise ConfigError(f"split policy {s!r}: expected sequence:NAME1,NAME2 (those sequences are test)")
        return SplitPolicy("sequence", sequences=names)
    raise ConfigError(f"unknown split policy {s!r}; expected every:K, sequence:NAME1,NAME2 or given")


def apply_split_policy(frames: Sequence[FrameRecord], policy: SplitPolicy, root: Path,
                       has_split: bool) -> None:
    """Set ``frame.split`` in place according to ``policy``."""
    if policy.kind == "given":
        if not has_split:
            raise ConfigError("split policy 'given': this format has no split of its own; "
                              "use every:K or sequence:NAMES")
        return
    if policy.kind == "every":
        order = sorted(range(len(frames)), key=lambda i: _name(frames[i], root))
        for rank, i in enumerate(order):
            frames[i].split = "test" if rank % policy.every == 0 else "train"
        return
    known = sorted({f.sequence for f in frames})
    unknown = [n for n in policy.sequences if n not in known]
    if unknown:
        raise ConfigError(f"split policy names unknown sequence(s) {', '.join(unknown)}; "
                          f"this dataset has: {', '.join(repr(k) for k in known)}")
    for f in frames:
        f.split = "test" if f.sequence in policy.sequences else "train"


def _name(frame: FrameRecord, root: Path) -> str:
    try:
        return Path(frame.image).relative_to(root).as_posix()
    except ValueError:
        return Path(frame.image).as_posix()


def resolve_policy(split_policy: Optional[object], has_split: bool) -> SplitPolicy:
    if split_policy is None:
        return SplitPolicy("given") if has_split else DEFAULT_POLICY
    return parse_split_policy(split_policy)
