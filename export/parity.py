"""Run exported graphs and the PyTorch model on the same frames and compare their outputs.

:func:`evaluate_onnx` runs an ONNX file (or :func:`evaluate_onnx_model` a ModelProto) in ONNX
Runtime on the CPU and returns ``{"position" (N,3) m, "rotation" (N,4), "sigma" (N,2)}``.
``optimization`` picks how ORT treats the graph:

* ``"disable"``: the graph runs node by node as written. For a Q/DQ INT8 graph this is
  quantize -> dequantize -> float arithmetic, the numerics TensorRT's INT8 (int32
  accumulation, rescale) approximates. Use it for drift figures that speak for TensorRT.
* ``"all"``: ORT's full optimisation: Q/DQ pairs are fused into ORT's own int8 kernels
  (QLinearConv ...). Figures from it describe ORT on this CPU, nothing else.

:func:`torch_outputs` is the PyTorch reference (``PoseNet.predict_world``), and
:func:`compare_outputs` the max per-frame differences (position m, rotation deg, sigma rel).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np

from edgepose.errors import ConfigError, EdgePoseError, require
from edgepose.geometry import rotation_error_deg
from edgepose.input_spec import as_model_input

OPTIMIZATIONS = ("all", "disable", "basic", "extended")
_OUTPUTS = ("position", "rotation", "sigma")


def make_session(model: Union[str, Path, bytes, object], optimization: str = "all",
                 threads: int = 0):
    """An ONNX Runtime CPU session for a file path, serialized bytes or a ModelProto."""
    ort = require("onnxruntime", "ONNX inference", "pip install onnxruntime")
    if optimization not in OPTIMIZATIONS:
        raise ConfigError(f"optimization must be one of {OPTIMIZATIONS}, not {optimization!r}")
    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    }[optimization]
    so.intra_op_num_threads = int(threads)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # polite on shared CPUs
    so.log_severity_level = 3
    if hasattr(model, "SerializeToString"):
        model = model.SerializeToString()
    elif not isinstance(model, (bytes, bytearray)):
        if not Path(model).is_file():
            raise EdgePoseError(f"ONNX file not found: {model}", hint="export it first: edgepose-export RUN --out BUNDLE")
        model = str(model)
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def run_session(sess, images: np.ndarray, batch_size: int = 16) -> Dict[str, np.ndarray]:
    """Run frames ``uint8 (N, H, W, 3)`` through a session, chunked to its batch size.

    A float32 NCHW graph gets the frames transposed and cast. A fixed-batch graph gets the
    frames in chunks of that batch; the last chunk is padded by repeating its last frame
    and the padding is dropped from the outputs.
    """
    inp = sess.get_inputs()[0]
    kind = "uint8" if "uint8" in inp.type else "float32"
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise EdgePoseError(f"expected frames uint8 (N, H, W, 3) with N >= 1; got shape {images.shape}")
    fixed = inp.shape[0] if isinstance(inp.shape[0], int) else None
    step = fixed or int(batch_size)
    names = [o.name for o in sess.get_outputs()]
    chunks = {n: [] for n in names}
    for i in range(0, len(images), step):
        part = images[i:i + step]
        n = len(part)
        if fixed and n < fixed:
            part = np.concatenate([part, np.repeat(part[-1:], fixed - n, axis=0)])
        res = sess.run(names, {inp.name: as_model_input(part, kind)})
        for name, r in zip(names, res):
            chunks[name].append(np.asarray(r)[:n])
    return {n: np.concatenate(v).astype(np.float64) for n, v in chunks.items()}


def evaluate_onnx_model(model, images: np.ndarray, optimization: str = "all", batch_size: int = 16,
                        threads: int = 0) -> Dict[str, np.ndarray]:
    """:func:`run_session` on a fresh session of ``model`` (path, bytes or ModelProto)."""
    return run_session(make_session(model, optimization, threads), images, batch_size)


def evaluate_onnx(path: Union[str, Path], images: np.ndarray, optimization: str = "all",
                  batch_size: int = 16, threads: int = 0) -> Dict[str, np.ndarray]:
    """Outputs ``{"position" (N,3) m, "rotation" (N,4), "sigma" (N,2)}`` (float64) of an ONNX file."""
    return evaluate_onnx_model(path, images, optimization, batch_size, threads)


def torch_outputs(model, images: np.ndarray, batch_size: int = 32) -> Dict[str, np.ndarray]:
    """PyTorch reference outputs (float64 numpy) of a PoseNet on ``uint8 (N, H, W, 3)`` frames."""
    torch = require("torch", "the PyTorch reference", "pip install 'edgepose[train]'")
    out = {k: [] for k in _OUTPUTS}
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size]))
        p, q, s = model.predict_world(x)
        for k, v in zip(_OUTPUTS, (p, q, s)):
            out[k].append(v.double().cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def compare_outputs(a: Dict[str, np.ndarray], b: Dict[str, np.ndarray]) -> Dict[str, float]:
    """Max per-frame differences: position distance (m), rotation angle (deg), sigma relative."""
    for k in _OUTPUTS:
        if k not in a or k not in b:
            raise EdgePoseError(f"outputs lack {k!r}: got {sorted(a)} and {sorted(b)}")
        if np.shape(a[k]) != np.shape(b[k]):
            raise EdgePoseError(f"{k}: shapes differ {np.shape(a[k])} vs {np.shape(b[k])}")
    dp = np.linalg.norm(np.asarray(a["position"]) - np.asarray(b["position"]), axis=-1)
    dq = rotation_error_deg(a["rotation"], b["rotation"])
    sb = np.abs(np.asarray(b["sigma"]))
    ds = np.abs(np.asarray(a["sigma"]) - np.asarray(b["sigma"])) / np.maximum(sb, 1e-12)
    return {"max_position_m": float(dp.max()), "max_rotation_deg": float(dq.max()),
            "max_sigma_rel": float(ds.max())}


def check_parity(a: Dict[str, np.ndarray], b: Dict[str, np.ndarray], position_m: float = 1e-4,
                 rotation_deg: float = 1e-3, what: Optional[str] = None) -> Dict[str, float]:
    """:func:`compare_outputs` and raise :class:`EdgePoseError` when a bound is exceeded."""
    d = compare_outputs(a, b)
    if d["max_position_m"] > position_m or d["max_rotation_deg"] > rotation_deg:
        raise EdgePoseError(f"{what or 'outputs'} differ: position {d['max_position_m']:.3g} m "
                            f"(bound {position_m}), rotation {d['max_rotation_deg']:.3g} deg (bound {rotation_deg})")
    return d
