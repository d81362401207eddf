"""Render the whole synthetic data set into a 7-Scenes folder, deterministically by seed.

The folder is built under a temporary sibling and renamed at the end
(:func:`edgepose.atomic.atomic_dir`), so an interrupted run never leaves a half-written
data set that looks complete. Frames are rendered by a process pool (``workers``); every
file depends only on the seed and the frame's pose, so the bytes do not depend on the
number of workers or the order in which they finish.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..atomic import atomic_dir
from ..outputs import OWNER_FILE, owned_files, write_owner
from ..errors import ConfigError
from ..progress import progress as progress_bar
from . import layout
from .contact_sheet import make_contact_sheet
from .render import Renderer, intrinsics
from .scene import GENERATOR_VERSION, build_scene
from .trajectories import SequencePlan, plan_sequences

CONTACT_SHEET = "contact_sheet.png"
SCENE_JSON = "scene.json"
#: the tool named in a render's ownership record
SYNTH_TOOL = "edgepose-synth"


@dataclass
class SynthConfig:
    """What to render. ``size = (width, height)`` pixels; ``frames`` counts all sequences."""

    frames: int = 800
    size: Tuple[int, int] = (160, 120)
    seed: int = 0
    n_train: int = 4
    n_test: int = 2
    random_views: int = 0
    aa: int = 2                 # colour supersampling per axis
    hfov_deg: float = 60.0
    ppm: float = 100.0          # texels per metre
    contact_columns: int = 6

    def validate(self) -> None:
        W, H = (int(v) for v in self.size)
        if W < 8 or H < 8 or W > 4096 or H > 4096:
            raise ConfigError(f"image size must be within 8..4096 pixels per side, got {W}x{H}",
                              hint="pass --size WxH, e.g. --size 160x120")
        if int(self.frames) < 1:
            raise ConfigError(f"--frames must be >= 1, got {self.frames}")
        if not 1 <= int(self.aa) <= 4:
            raise ConfigError(f"supersampling must be 1..4, got {self.aa}")


@dataclass
class SynthResult:
    out: Path
    plans: List[SequencePlan]
    K: np.ndarray
    seconds: float
    workers: int
    timings: Dict[str, float] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return sum(len(p) for p in self.plans)


# ----------------------------------------------------------------------------- workers
_STATE: Dict[str, object] = {}


def quiet_worker_signals() -> None:
    """A pool worker leaves signals to its parent: a forked worker inherits the parent's
    :class:`~edgepose.interrupts.Signals` handlers, so the pool's own SIGTERM when it closes
    (``Pool.terminate``) raised ``Interrupt`` in each worker and printed its traceback; Ctrl-C
    (sent to the whole process group) is the parent's to handle, which then closes the pool."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _init_pool_worker(*args) -> None:
    quiet_worker_signals()
    _init_worker(*args)


def _init_worker(seed: int, ppm: float, K: np.ndarray, size: Tuple[int, int], aa: int) -> None:
    key = (seed, ppm, tuple(np.asarray(K).ravel()), tuple(size), aa)
    if _STATE.get("key") != key:  # a forked worker inherits the parent's renderer
        _STATE["renderer"] = Renderer(build_scene(seed, ppm), K, size, aa)
        _STATE["key"] = key


def _render_job(job) -> int:
    """Render and write the frames of one job: ``(folder, [(index, position, rotation)])``."""
    folder, frames = job
    renderer: Renderer = _STATE["renderer"]  # type: ignore[assignment]
    folder = Path(folder)
    for index, position, rotation in frames:
        rgb, depth = renderer.render(position, rotation)
        stem = folder / layout.frame_stem(index)
        layout.write_color(f"{stem}.color.png", rgb)
        layout.write_depth(f"{stem}.depth.png", depth)
        Path(f"{stem}.pose.txt").write_text(layout.pose_text(position, rotation))
    return len(frames)


def _jobs(tmp: Path, plans: Sequence[SequencePlan], chunk: int):
    for p in plans:
        for s in range(0, len(p), chunk):
            idx = range(s, min(s + chunk, len(p)))
            yield str(tmp / p.name), [(i, p.positions[i], p.rotations[i]) for i in idx]


def default_workers() -> int:
    """Cores this process may use (at most 8): rendering scales with cores."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))


# ----------------------------------------------------------------------------- main entry
def _files_under(root: Path) -> List[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink())


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse to replace a non-empty folder unless its ownership record
    (:data:`edgepose.outputs.OWNER_FILE`) says an earlier ``edgepose-synth`` wrote it and it
    holds nothing else: a ``scene.json`` proves nothing, and a user's added files are theirs.
    ``force`` replaces the folder anyway (the user said so)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output path {out} exists and is not a folder", hint="pick another OUT")
    if force or not out.is_dir() or not any(out.iterdir()):
        return
    owned = owned_files(out, SYNTH_TOOL)
    if owned is None:
        raise ConfigError(f"output folder {out} is not empty and has no record that edgepose-synth wrote it "
                          f"({OWNER_FILE}); a render replaces the whole folder",
                          hint="pick a new OUT, or pass --force to replace its contents")
    theirs = [rel for rel in _files_under(out) if rel not in owned and rel != OWNER_FILE]
    if theirs:
        shown = ", ".join(theirs[:5]) + (f" and {len(theirs) - 5} more" if len(theirs) > 5 else "")
        raise ConfigError(f"output folder {out} is an earlier render, but {len(theirs)} file(s) in it were not "
                          f"written by edgepose-synth: {shown}; a render replaces the whole folder",
                          hint="move them out of it, pick a new OUT, or pass --force to replace them too")


def scene_description(cfg: SynthConfig, plans: Sequence[SequencePlan], K: np.ndarray, scene) -> dict:
    """``scene.json``: everything that determines the bytes, and nothing that does not
    (no time stamps, no paths, no worker count)."""
    try:
        import skimage
        skv = skimage.__version__
    except ImportError:  # pragma: no cover - build_scene already needed it
        skv = None
    W, H = (int(v) for v in cfg.size)
    return {
        "generator": "edgepose.synth",
        "generator_version": GENERATOR_VERSION,
        "scikit_image_version": skv,
        "seed": int(cfg.seed),
        "size": [W, H],
        "frames": int(sum(len(p) for p in plans)),
        "frames_per_sequence": {p.name: len(p) for p in plans},
        "sequences": [{"name": p.name, "number": p.number, "split": p.split, "kind": p.kind,
                       "frames": len(p)} for p in plans],
        "splits": {s: [p.name for p in plans if p.split == s] for s in ("train", "test")},
        "intrinsics": np.asarray(K).tolist(),
        "hfov_deg": float(cfg.hfov_deg),
        "supersampling": int(cfg.aa),
        **scene.describe(),
        "conventions": {
            "world": "metres, z up, floor at z = 0",
            "pose": "frame-NNNNNN.pose.txt = 4x4 T_world_from_camera (camera-to-world), "
                    "OpenCV camera axes x right, y down, z forward",
            "depth": "frame-NNNNNN.depth.png = uint16 depth along the optical axis z in mm, "
                     f"{layout.DEPTH_INVALID} = invalid",
            "pixel_centre": "pixel (col, row) is centred on (col + 0.5, row + 0.5) in the "
                            "coordinates K maps to (principal point = image centre W/2, H/2)",
        },
    }


def generate(out, cfg: Optional[SynthConfig] = None, workers: Optional[int] = None,
             progress: bool = False, force: bool = False,
             log: Callable[[str], None] = lambda s: None) -> SynthResult:
    """Render ``cfg`` into ``out`` (7-Scenes layout, see :mod:`edgepose.synth.layout`).

    Returns a :class:`SynthResult` (the plans, ``K``, wall time and per-stage timings).
    Raises :class:`~edgepose.errors.ConfigError` for bad settings or an ``out`` that holds
    something else, and :class:`~edgepose.errors.MissingDependencyError` without scikit-image.
    """
    cfg = cfg or SynthConfig()
    cfg.validate()
    out = Path(out)
    check_out_dir(out, force)
    t0 = time.perf_counter()
    size = (int(cfg.size[0]), int(cfg.size[1]))
    K = intrinsics(size, cfg.hfov_deg)
    plans = plan_sequences(cfg.frames, cfg.seed, cfg.n_train, cfg.n_test, cfg.random_views)
    _init_worker(int(cfg.seed), float(cfg.ppm), K, size, int(cfg.aa))
    scene = _STATE["renderer"].scene  # type: ignore[attr-defined]
    timings = {"scene_s": time.perf_counter() - t0}
    total = sum(len(p) for p in plans)
    workers = max(1, min(int(workers or default_workers()), total))
    log(f"rendering {total} frames at {size[0]}x{size[1]} in {len(plans)} sequences "
        f"with {workers} worker(s) into {out}")
    with atomic_dir(out) as tmp:
        for p in plans:
            (tmp / p.name).mkdir()
        chunk = max(1, min(25, -(-total // (workers * 8))))
        jobs = list(_jobs(tmp, plans, chunk))
        bar = progress_bar(total=total, desc="rendering", unit="frame", enabled=progress)
        t1 = time.perf_counter()
        try:
            if workers == 1:
                for job in jobs:
                    bar.update(_render_job(job))
            else:
                method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
                ctx = mp.get_context(method)
                with ctx.Pool(workers, initializer=_init_pool_worker,
                              initargs=(int(cfg.seed), float(cfg.ppm), K, size, int(cfg.aa))) as pool:
                    for n in pool.imap_unordered(_render_job, jobs):
                        bar.update(n)
        finally:
            bar.close()
        timings["render_s"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        (tmp / "TrainSplit.txt").write_text(layout.split_text(p.number for p in plans if p.split == "train"))
        (tmp / "TestSplit.txt").write_text(layout.split_text(p.number for p in plans if p.split == "test"))
        (tmp / "intrinsics.txt").write_text(layout.intrinsics_text(K))
        (tmp / SCENE_JSON).write_text(json.dumps(scene_description(cfg, plans, K, scene), indent=2) + "\n")
        sheet = make_contact_sheet(tmp, plans, cfg.contact_columns, scene.room_lo, scene.room_hi, scene.boxes)
        sheet.save(tmp / CONTACT_SHEET, format="PNG", optimize=False)
        write_owner(tmp, SYNTH_TOOL, _files_under(tmp))  # what a later render may replace
        timings["sheet_s"] = time.perf_counter() - t2
    seconds = time.perf_counter() - t0
    return SynthResult(out, plans, K, seconds, workers, timings)
