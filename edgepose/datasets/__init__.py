"""Dataset formats -> :class:`edgepose.records.Dataset` in edgepose's conventions.

One reader per format, each converting its own convention once, at the boundary:

=============  =====================================================================
cambridge      Cambridge Landmarks lists + ``reconstruction.nvm`` (:mod:`.cambridge`)
7scenes        Microsoft 7-Scenes ``seq-XX/frame-*`` (:mod:`.sevenscenes`)
colmap         COLMAP sparse model, text or binary (:mod:`.colmap`)
nerf           NeRF / instant-ngp ``transforms.json`` (:mod:`.nerf`)
middlebury     Middlebury multi-view ``*_par.txt`` (:mod:`.middlebury`)
csv            edgepose's CSV for your own captures (:mod:`.csv_format`)
=============  =====================================================================

>>> from edgepose.datasets import load_dataset, visible_points   # doctest: +SKIP
>>> ds = load_dataset("data/dino")                               # doctest: +SKIP
>>> pts, synthetic = visible_points(ds.frames[0])                # doctest: +SKIP
"""
from .detect import FORMATS, detect_format
from .loader import LoadReport, load_dataset, read_dataset
from .points import attach_points, visible_points
from .split import SplitPolicy, apply_split_policy, parse_split_policy

__all__ = [
    "FORMATS",
    "LoadReport",
    "SplitPolicy",
    "apply_split_policy",
    "attach_points",
    "detect_format",
    "load_dataset",
    "parse_split_policy",
    "read_dataset",
    "visible_points",
]
