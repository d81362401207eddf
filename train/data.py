"""Training data: frames preprocessed once into memory, served as batched tensor dicts.

Decoding PNG/JPEG files every epoch is the bottleneck on a small CPU, so :func:`build_cache`
applies the runtime's preprocessing rule (:func:`edgepose.preprocess.resize_crop`: resize to
cover, centre crop) to every frame once and keeps the result as ``uint8 (N, H, W, 3)``
(1000 frames at 128x96 are 37 MB). Labels are stored in the units the losses use:

* ``position`` ``(N, 3)``: ``(p_m - position_mean) / position_scale`` (normalised units),
* ``rotation`` ``(N, 4)``: camera-to-world unit quaternion wxyz, ``w >= 0``,
* ``points`` ``(N, M, 3)``: visible scene points in the same normalised units, padded to
  ``M`` with ``points_mask (N, M)`` bool (empty, ``M = 0``, when not asked for),
* ``K`` ``(N, 3, 3)``: intrinsics of the network-resolution image, pixels.

:class:`PoseFrames` is a ``torch.utils.data.Dataset`` whose ``__getitems__`` returns a whole
batch as one dict (one indexing op per tensor instead of N small ones plus a collate).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from edgepose.datasets import visible_points
from edgepose.errors import EdgePoseError
from edgepose.geometry import quat_canonical
from edgepose.preprocess import adjust_intrinsics, load_and_preprocess
from edgepose.progress import progress as show_progress
from edgepose.records import FrameRecord


@dataclass(frozen=True)
class Normalisation:
    """Scene position normalisation: ``p_norm = (p_m - mean) / scale``.

    ``mean`` ``(3,)`` metres is the mean training camera centre; ``scale`` (metres) is the
    RMS distance of the training camera centres to it (1.0 when they all coincide).
    """

    mean: Tuple[float, float, float]
    scale: float

    @classmethod
    def fit(cls, positions_m: np.ndarray) -> "Normalisation":
        """From training camera centres ``(N, 3)`` metres."""
        p = np.asarray(positions_m, dtype=np.float64).reshape(-1, 3)
        if len(p) == 0:
            raise EdgePoseError("cannot fit the position normalisation on zero frames")
        mean = p.mean(axis=0)
        rms = float(np.sqrt(np.mean(np.sum((p - mean) ** 2, axis=1))))
        return cls(tuple(float(v) for v in mean), rms if rms > 1e-9 else 1.0)

    def apply(self, points_m: np.ndarray) -> np.ndarray:
        """``(..., 3)`` metres -> normalised units."""
        return (np.asarray(points_m, dtype=np.float64) - np.asarray(self.mean)) / self.scale


def split_validation(frames: Sequence[FrameRecord], every: int,
                     blocks: bool = False) -> Tuple[List[FrameRecord], List[FrameRecord]]:
    """``(fit, val)``: about one frame in ``every`` is held out for choosing the best epoch and for
    the post-training fits (the pose memory, sigma). ``every <= 0`` holds out none.

    ``blocks`` False: every ``every``-th frame (the last of each block of ``every``, in dataset
    order), each between training frames of its trajectory; right when the test frames are too
    (a split by ``every:N``). ``blocks`` True (the test split is other sequences,
    :func:`sequences_disjoint`): one contiguous block of ``round(n / every)`` frames from the
    middle of each sequence of ``n`` training frames, so most validation frames are several
    frames away from any training frame, as test frames of another trajectory are (every
    ``every``-th frame sits next to near-copies: validation then flatters the regressor and
    sigma's scale fitted there under-covers the test split).

    Deterministic, so a resumed run validates on the same frames. The test split is never
    used for selection.
    """
    frames = list(frames)
    if every <= 0:
        return frames, []
    if blocks:
        by_seq: Dict[str, List[int]] = {}
        for i, f in enumerate(frames):
            by_seq.setdefault(str(getattr(f, "sequence", "") or ""), []).append(i)
        held = set()
        for rows in by_seq.values():
            m = max(1, int(round(len(rows) / every)))
            if len(rows) > m:
                start = (len(rows) - m) // 2
                held.update(rows[start : start + m])
        val = [f for i, f in enumerate(frames) if i in held]
        fit = [f for i, f in enumerate(frames) if i not in held]
    else:
        val = [f for i, f in enumerate(frames) if i % every == every - 1]
        fit = [f for i, f in enumerate(frames) if i % every != every - 1]
    if len(fit) < 2:
        raise EdgePoseError(f"only {len(frames)} training frames: nothing left to train on after holding "
                            f"out every {every}th for validation", hint="pass --val-every 0 or use more frames")
    return fit, val


def sequences_disjoint(train: Sequence[FrameRecord], test: Sequence[FrameRecord]) -> bool:
    """Whether every test frame names a sequence and none of them is a training frame's."""
    test_seqs = {str(getattr(f, "sequence", "") or "") for f in test}
    if not test_seqs or "" in test_seqs:
        return False
    return not test_seqs & {str(getattr(f, "sequence", "") or "") for f in train}


@dataclass
class FrameCache:
    """Preprocessed frames and labels as CPU tensors (shapes in the module docstring)."""

    images: torch.Tensor  # (N, H, W, 3) uint8
    position: torch.Tensor  # (N, 3) float32, normalised units
    rotation: torch.Tensor  # (N, 4) float32
    K: torch.Tensor  # (N, 3, 3) float32, pixels at network resolution
    points: torch.Tensor  # (N, M, 3) float32, normalised units
    points_mask: torch.Tensor  # (N, M) bool
    position_m: np.ndarray  # (N, 3) float64, metres (for metrics)
    rotation_q: np.ndarray  # (N, 4) float64
    n_synthetic_points: int = 0  # frames whose points were drawn in the frustum
    sequence: Optional[np.ndarray] = None  # (N,) str: each frame's sequence name ("" unknown)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def batch(self, index: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The batch dict the trainer and the losses read, for ``index (B,)`` int64."""
        return {
            "index": index,
            "image": self.images.index_select(0, index),
            "position": self.position.index_select(0, index),
            "rotation": self.rotation.index_select(0, index),
            "K": self.K.index_select(0, index),
            "points": self.points.index_select(0, index),
            "points_mask": self.points_mask.index_select(0, index),
        }


def _visible_points(record: FrameRecord, max_points: int, seed: int):
    return visible_points(record, max_points=max_points, seed=seed)


def build_cache(frames: Sequence[FrameRecord], input_size: Tuple[int, int], norm: Normalisation,
                max_points: int = 0, seed: int = 0, threads: int = 2, progress: bool = False,
                desc: str = "frames") -> FrameCache:
    """Load, preprocess and label ``frames`` once.

    Args:
        input_size: network resolution ``(W, H)`` pixels.
        norm: the training split's position normalisation.
        max_points: scene points per frame for the reprojection loss (0: none). Frames
            without observed points get points drawn in their frustum by
            :func:`edgepose.datasets.visible_points` (counted in ``n_synthetic_points``).
        seed: seed of the point subsampling (frame ``i`` uses ``seed + i``).
        threads: image decoding threads (PIL releases the GIL while decoding).
    """
    frames = list(frames)
    if not frames:
        raise EdgePoseError("no frames to load", hint="check the dataset split")
    W, H = int(input_size[0]), int(input_size[1])
    n = len(frames)
    images = np.empty((n, H, W, 3), dtype=np.uint8)

    def load(i: int) -> None:
        load_and_preprocess(frames[i].image, (W, H), out=images[i])

    it = range(n)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = pool.map(load, it)
        if progress:
            results = show_progress(results, total=n, desc=f"loading {desc}", unit="img", leave=False)
        for _ in results:
            pass

    pos_m = np.stack([np.asarray(f.position, dtype=np.float64) for f in frames])
    rot = quat_canonical(np.stack([np.asarray(f.rotation, dtype=np.float64) for f in frames]))
    K = np.stack([adjust_intrinsics(f.K, (int(f.width), int(f.height)), (W, H)) for f in frames])

    M = int(max(0, max_points))
    points = np.zeros((n, M, 3), dtype=np.float32)
    mask = np.zeros((n, M), dtype=bool)
    n_synth = 0
    if M:
        for i, f in enumerate(frames):
            pts, synthetic = _visible_points(f, max_points=M, seed=seed + i)
            pts = np.asarray(pts, dtype=np.float64).reshape(-1, 3)[:M]
            points[i, : len(pts)] = norm.apply(pts)
            mask[i, : len(pts)] = True
            n_synth += bool(synthetic)
    return FrameCache(
        images=torch.from_numpy(images),
        position=torch.from_numpy(norm.apply(pos_m).astype(np.float32)),
        rotation=torch.from_numpy(rot.astype(np.float32)),
        K=torch.from_numpy(K.astype(np.float32)),
        points=torch.from_numpy(points),
        points_mask=torch.from_numpy(mask),
        position_m=pos_m,
        rotation_q=rot,
        n_synthetic_points=n_synth,
        sequence=np.array([str(getattr(f, "sequence", "") or "") for f in frames], dtype=object),
    )


class PoseFrames(torch.utils.data.Dataset):
    """A :class:`FrameCache` as a map-style dataset; ``__getitems__`` serves whole batches."""

    def __init__(self, cache: FrameCache):
        self.cache = cache

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, i: int) -> Dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.cache.batch(torch.tensor([int(i)])).items()}

    def __getitems__(self, indices: List[int]) -> Dict[str, torch.Tensor]:
        return self.cache.batch(torch.as_tensor(list(indices), dtype=torch.int64))


def identity_collate(batch):
    """``collate_fn`` for :class:`PoseFrames`: the batch is already a dict of tensors."""
    return batch


def make_loader(cache: FrameCache, batch_sampler, workers: int = 0, pin_memory: bool = False,
                prefetch: Optional[int] = 2) -> torch.utils.data.DataLoader:
    """A DataLoader over the cache. Workers overlap batch assembly with compute (worth it on a
    GPU; on a small CPU the cached indexing is cheap and ``workers=0`` is fastest)."""
    kwargs = {}
    if workers > 0:
        kwargs.update(prefetch_factor=prefetch, persistent_workers=False)
    # its own generator: creating an iterator then draws its worker seed from it, not from the
    # global RNG, whose state a mid-epoch checkpoint captures (dropout must replay exactly)
    return torch.utils.data.DataLoader(PoseFrames(cache), batch_sampler=batch_sampler, num_workers=workers,
                                       collate_fn=identity_collate, pin_memory=pin_memory,
                                       generator=torch.Generator().manual_seed(0), **kwargs)
