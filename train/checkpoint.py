"""Checkpoint files of a training run: atomic writes, resume state, RNG capture.

Every file is ``torch.save`` of a dict holding only tensors, dicts, lists, strings, numbers
and ``None`` (loadable with ``torch.load(weights_only=True)``), written through
:func:`edgepose.atomic.atomic_write_bytes` (temporary file, fsync, rename): a crash leaves the
previous file, never a truncated one.

Run folder (the exporter and the benchmarks read it)::

    RUN/final.pt                       model + config + data + metrics
    RUN/checkpoints/stage{1,2}_last.pt  + optimizer, scheduler, loss_state, epoch, step, stage, rng
    RUN/checkpoints/stage{1,2}_best.pt  same, at the epoch with the best validation score
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Dict, List, Optional, Union

import torch

from edgepose.atomic import atomic_write_bytes
from edgepose.errors import ConfigError, EdgePoseError
from edgepose.outputs import OWNER_FILE, read_owner, write_owner

from .model import CHECKPOINT_FORMAT, read_checkpoint

STAGES = ("stage1", "stage2")


def checkpoint_path(run: Union[str, Path], stage: str, kind: str) -> Path:
    """``RUN/checkpoints/{stage}_{kind}.pt`` with ``kind`` in ``last``, ``best``."""
    return Path(run) / "checkpoints" / f"{stage}_{kind}.pt"


def save_checkpoint(path: Union[str, Path], state: Dict) -> Path:
    """Write ``state`` (with ``format`` set) atomically; returns the path."""
    state = dict(state)
    state["format"] = CHECKPOINT_FORMAT
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(path, buf.getvalue())


def capture_rng(augment: Optional[torch.Generator] = None) -> Dict:
    """The random states a resumed run must continue from (torch CPU, CUDA, augmentation)."""
    out: Dict = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = list(torch.cuda.get_rng_state_all())
    if augment is not None:
        out["augment"] = augment.get_state()
    return out


def restore_rng(state: Dict, augment: Optional[torch.Generator] = None) -> None:
    """Inverse of :func:`capture_rng` (states it lacks are left alone)."""
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        states: List[torch.Tensor] = state["cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
    if augment is not None and "augment" in state:
        augment.set_state(state["augment"])


def latest_resume_point(run: Union[str, Path]) -> Optional[Dict]:
    """The checkpoint ``--resume`` continues from: stage 2's last, else stage 1's last.

    Returns ``None`` when the run folder holds no checkpoint yet (a fresh start).
    """
    for stage in reversed(STAGES):
        path = checkpoint_path(run, stage, "last")
        if path.is_file():
            ckpt = read_checkpoint(path)
            missing = [k for k in ("optimizer", "epoch", "stage", "model") if k not in ckpt]
            if missing:
                raise EdgePoseError(f"{path} cannot be resumed from: it lacks {missing}",
                                    hint="start a new run (another --out) or delete the file")
            ckpt["path"] = str(path)
            return ckpt
    return None


#: the tool named in a run folder's ownership record
TRAIN_TOOL = "edgepose-train"


def check_run_folder(run: Union[str, Path], resume_point: Optional[Dict]) -> None:
    """Refuse to train into a non-empty ``run`` folder that is not an edgepose run: one without
    the ownership record (:data:`edgepose.outputs.OWNER_FILE`) that :func:`claim_run_folder`
    writes and without a checkpoint ``--resume`` can read. Another tool's ``final.pt`` or
    ``metrics.json`` would be overwritten; a name proves nothing."""
    run = Path(run)
    if not run.is_dir() or not any(run.iterdir()):
        return
    record = read_owner(run)
    if resume_point is not None or (record is not None and record["tool"] == TRAIN_TOOL):
        return
    theirs = sorted(p.name for p in run.iterdir())
    shown = ", ".join(theirs[:5]) + (f" and {len(theirs) - 5} more" if len(theirs) > 5 else "")
    raise ConfigError(f"--out {run} holds files no edgepose-train run wrote (no {OWNER_FILE}, no resumable "
                      f"checkpoint): {shown}; training would overwrite final.pt, metrics.json and the rest there",
                      hint="choose a new or empty --out folder for the run")


def claim_run_folder(run: Union[str, Path]) -> None:
    """Create ``run`` with its ownership record (kept when it is there already)."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    if read_owner(run) is None:
        write_owner(run, TRAIN_TOOL)


def load_state_or_none(path: Union[str, Path]) -> Optional[Dict]:
    """``read_checkpoint(path)`` or ``None`` when the file does not exist."""
    return read_checkpoint(path) if Path(path).is_file() else None


def nonfinite_hint(run: Union[str, Path]) -> str:
    """What to do after training went NaN/inf: the newest checkpoint left intact, and the fix."""
    saved = sorted((Path(run) / "checkpoints").glob("*.pt"), key=lambda p: p.stat().st_mtime)
    keep = f"the last good checkpoint is kept: {saved[-1]}; " if saved else ""
    return keep + "lower the learning rate (--lr / --stage2-lr) or check the labels with edgepose-inspect"


def stop_if_nonfinite(run: Union[str, Path], model: torch.nn.Module, desc: str, val_metrics: Dict) -> None:
    """Raise before an epoch whose weights or validation went NaN/inf is saved over a good one."""
    bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    bad_val = [k for k, v in val_metrics.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad or bad_val:
        what = f"weights {bad[:3]}" if bad else f"validation {bad_val}"
        raise EdgePoseError(f"{desc}: training became non-finite (NaN/inf in {what}); nothing of this epoch "
                            "was saved", hint=nonfinite_hint(run))
