"""``edgepose-export --verify BUNDLE``: the files are intact and the graphs still compute the same.

Three checks:

1. **Hashes**: every file listed in ``edgepose.json`` exists with its recorded size and sha256
   (:func:`edgepose.bundle.verify_files`). A flipped byte anywhere fails here.
2. **TensorRT graph lint** (:mod:`.graph_lint`): every ONNX graph keeps the parser rules
   TensorRT depends on (uint8 input straight into a Cast, symmetric int8 Q/DQ, FP32
   post-processing...); a violation names the node, the rule and its source. Any function
   registered in :data:`edgepose.export.passes.GRAPH_CHECKS` (the checks the export runs
   after each pass) also runs on each ONNX file, beside parity.
3. **Parity**: at export time :func:`record_parity` stores ``parity.npz`` in the bundle (role
   ``parity``): a few preprocessed frames (``uint8 (N, H, W, 3)``, real validation frames when
   the dataset was available) and each ONNX file's outputs on them in ONNX Runtime
   (``optimization="disable"``: the graph as written, Q/DQ in float for INT8). Verification
   re-runs every ONNX file in ONNX Runtime here and compares (position distance m, rotation
   angle deg) within :data:`TOLERANCE`, scaled by the scene's ``position_scale``. With torch
   importable and a checkpoint in the bundle, the FP32 graph is also compared with PyTorch.

TensorRT engines are checked by hash only; their numerics are measured on the device by
``edgepose-bench``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np

from edgepose.bundle import verify_files
from edgepose.errors import BundleError, EdgePoseError
from edgepose.manifest import Manifest

from .bundle_writer import PARITY_NAME
from .graph_lint import lint_bundle, tensorrt_graph_lint
from .onnx_export import PARITY_POSITION_M, PARITY_ROTATION_DEG
from .parity import compare_outputs, evaluate_onnx, torch_outputs
from .passes import GRAPH_CHECKS, run_graph_checks

#: (position tolerance as a fraction of position_scale, rotation tolerance deg) per precision:
#: the same file on another CPU/ORT build may round differently; FP16/INT8 round more coarsely.
TOLERANCE = {"fp32": (1e-5, 1e-3), "fp16": (1e-3, 0.05), "int8": (1e-2, 0.5)}
OPTIMIZATION = "disable"
OUTPUT_KEYS = ("position", "rotation", "sigma")


def record_parity(bundle_dir: Union[str, Path], images: np.ndarray, onnx_files: Dict[str, str],
                  source: str) -> dict:
    """Write ``parity.npz`` (frames + each ONNX file's outputs) into ``bundle_dir``.

    ``onnx_files`` maps precision -> relative path. Returns the manifest ``parity`` section.
    """
    bundle_dir = Path(bundle_dir)
    arrays = {"images": np.ascontiguousarray(images, dtype=np.uint8)}
    for precision, rel in onnx_files.items():
        out = evaluate_onnx(bundle_dir / rel, images, optimization=OPTIMIZATION)
        for k in OUTPUT_KEYS:
            arrays[f"{precision}.{k}"] = out[k].astype(np.float64)
    tmp = bundle_dir / (PARITY_NAME + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(bundle_dir / PARITY_NAME)
    return {"file": PARITY_NAME, "frames": int(len(images)), "source": source,
            "onnxruntime_optimization": OPTIMIZATION, "precisions": sorted(onnx_files)}


def _load_parity(path: Path) -> Dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:
        raise BundleError(f"cannot read {path}: {type(exc).__name__}: {exc}", hint="re-export the bundle") from None


def verify_bundle(bundle_dir: Union[str, Path], parity: bool = True, log=print) -> dict:
    """Check hashes, then re-run parity. Returns a report; raises :class:`BundleError` on failure.

    Report: ``{"files": [checked], "parity": {precision: {max_position_m, max_rotation_deg,
    bound_m, bound_deg, ok}}, "torch": {...} or None}``.
    """
    bundle_dir = Path(bundle_dir)
    manifest = Manifest.load(bundle_dir)
    checked = verify_files(bundle_dir, manifest)
    log(f"hashes: {len(checked)} file(s) match edgepose.json")
    report: dict = {"files": checked, "parity": {}, "torch": None, "lint": {}}
    try:
        lint_failures = _lint(bundle_dir, manifest, report, log)
    except Exception as exc:  # noqa: BLE001 - only a graph that does not parse is turned into a message
        if type(exc).__module__.split(".")[0] not in ("google", "onnx"):
            raise
        raise BundleError(f"bundle {bundle_dir}: an ONNX file does not parse ({type(exc).__name__}: {exc}); its "
                          "sha256 matches the manifest, so it was corrupt when the manifest was written or both "
                          "were edited", hint=f"re-export it: edgepose-export RUN --out {bundle_dir}") from None
    if lint_failures:
        raise BundleError(f"bundle {bundle_dir} has graphs TensorRT would refuse:\n    " + "\n    ".join(lint_failures),
                          hint=f"re-export it with this edgepose: edgepose-export RUN --out {bundle_dir}")
    if not parity:
        return report
    files = manifest.listing
    pfile = files.find("parity")
    if pfile is None:
        log("parity: the bundle has no parity.npz (written by an older export); hashes only")
        return report

    data = _load_parity(bundle_dir / pfile)
    images = data["images"]
    scale = manifest.normalization.position_scale
    failures = []
    for rel, entry in files.with_role("onnx").items():
        prec = entry.precision
        if f"{prec}.position" not in data:
            continue
        recorded = {k: data[f"{prec}.{k}"] for k in OUTPUT_KEYS}
        now = evaluate_onnx(bundle_dir / rel, images, optimization=OPTIMIZATION)
        d = compare_outputs(now, recorded)
        rel_m, bound_deg = TOLERANCE.get(prec, TOLERANCE["int8"])
        bound_m = rel_m * max(scale, 1e-6)
        ok = d["max_position_m"] <= bound_m and d["max_rotation_deg"] <= bound_deg
        report["parity"][prec] = {**d, "bound_m": bound_m, "bound_deg": bound_deg, "ok": bool(ok)}
        log(f"parity {prec:<5} {rel:<18} max {d['max_position_m']:.2e} m (bound {bound_m:.1e}), "
            f"{d['max_rotation_deg']:.2e} deg (bound {bound_deg:.1e}) {'ok' if ok else 'FAILED'}")
        failures += _graph_checks(bundle_dir / rel, prec, report["parity"][prec], log)
        if not ok:
            failures.append(f"{rel}: outputs moved by {d['max_position_m']:.3g} m / {d['max_rotation_deg']:.3g} deg "
                            f"from those recorded at export (bounds {bound_m:.3g} m / {bound_deg:.3g} deg)")
    report["torch"] = _torch_parity(bundle_dir, manifest, images, data, log)
    if report["torch"] is not None and not report["torch"]["ok"]:
        failures.append("model.onnx no longer matches the checkpoint in PyTorch")
    if failures:
        raise BundleError(f"bundle {bundle_dir} failed parity:\n    " + "\n    ".join(failures),
                          hint=f"re-export it: edgepose-export RUN --out {bundle_dir}")
    return report


def _lint(bundle_dir: Path, manifest: Manifest, report: dict, log) -> list:
    """Run the TensorRT graph lint (:mod:`.graph_lint`) on every ONNX file; return the failures."""
    failures = []
    for rel, found in lint_bundle(bundle_dir, manifest).items():
        report["lint"][rel] = [str(v) for v in found]
        log(f"lint {rel:<18} {'ok' if not found else f'{len(found)} violation(s)'}")
        failures += [f"{rel}: {v}" for v in found]
    return failures


def _graph_checks(path: Path, precision: str, row: dict, log) -> list:
    """:data:`~.passes.GRAPH_CHECKS` on one bundle graph; their summaries go into ``row["checks"]``."""
    others = [c for c in GRAPH_CHECKS if c is not tensorrt_graph_lint]  # the lint ran on every graph above
    if not others:
        return []
    try:
        row["checks"] = run_graph_checks(path, precision, others)
    except EdgePoseError as exc:
        log(f"checks {precision:<5} {path.name}: FAILED: {exc}")
        return [f"{path.name}: {exc}"]
    log(f"checks {precision:<5} {path.name}: {', '.join(row['checks']) or 'none apply'} ok")
    return []


def _torch_parity(bundle_dir: Path, manifest: Manifest, images: np.ndarray, data: dict, log) -> Optional[dict]:
    """FP32 recorded outputs vs the bundle's checkpoint in PyTorch; ``None`` without torch."""
    ckpt = manifest.listing.find("checkpoint")
    if ckpt is None or "fp32.position" not in data:
        return None
    try:
        import torch  # noqa: F401
    except ImportError:
        log("parity torch: skipped (torch is not installed here; the ONNX checks above still ran)")
        return None
    from edgepose.train.model import load_model  # lazy: torch, present (checked above); --verify runs without it

    ref = torch_outputs(load_model(bundle_dir / ckpt), images)
    d = compare_outputs({k: data[f"fp32.{k}"] for k in OUTPUT_KEYS}, ref)
    ok = d["max_position_m"] <= PARITY_POSITION_M and d["max_rotation_deg"] <= PARITY_ROTATION_DEG
    log(f"parity torch model.pt vs model.onnx: max {d['max_position_m']:.2e} m, {d['max_rotation_deg']:.2e} deg "
        f"{'ok' if ok else 'FAILED'}")
    return {**d, "ok": bool(ok)}
