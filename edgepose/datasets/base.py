"""What every reader returns to :func:`edgepose.datasets.load_dataset`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from ..records import FrameRecord


@dataclass
class ReaderOutput:
    """Frames in the design convention, whether the format assigned splits, and notes.

    ``has_split`` is ``True`` when the source itself says which frames are train and test
    (the frames' ``split`` is then meaningful); otherwise the split policy decides.
    ``problems`` are non-fatal findings shown by ``edgepose-inspect``.
    """

    frames: List[FrameRecord]
    has_split: bool
    problems: List[str] = field(default_factory=list)
