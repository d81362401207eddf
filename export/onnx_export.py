"""PyTorch PoseNet -> ONNX per the model contract, checked, simplified only when it is safe.

The exported graph (README, "Conventions"):

* input ``image``: ``uint8 (N, H, W, 3)`` RGB NHWC (``input="uint8"``, the default: cast and
  mean/std normalisation run inside the graph), or ``float32 (N, 3, H, W)`` NCHW holding
  0..255 (``input="float32"``, for targets without uint8 I/O);
* outputs in world units: ``position (N, 3)`` metres, ``rotation (N, 4)`` unit quaternion wxyz
  with ``w >= 0`` (camera-to-world), ``sigma (N, 2)`` = expected ``[position error m, rotation
  error rad]`` of the frame -- i.e. :meth:`PoseNet.to_world` of :meth:`PoseNet.forward`.

Nodes carry the names of the modules that made them, so later passes can find them by
prefix (:data:`NODE_GROUPS`, :func:`node_groups`): ``/preprocess/...``, ``/backbone/...``,
``/fc/...``, the heads ``/fc_position|fc_rotation|fc_log_sigma/...`` and the post-processing
``/post_decode|post_memory|post_position|post_rotation|post_sigma/...`` that FP16 and INT8 keep
in float32 (``/post_decode``: a 6-D or log-quaternion rotation head's conversion to a
quaternion; ``/post_memory``: the pose memory's retrieval and blend; each only in models that
have one).

After ``onnx.checker`` the graph goes through onnxsim; the simplified graph is kept only if
it passes the checker and gives the same outputs as the unsimplified one on the parity
frames (otherwise the unsimplified graph is written and the info says why).
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

from edgepose.atomic import atomic_write_bytes
from edgepose.errors import ConfigError, EdgePoseError, require
from edgepose.input_spec import as_model_input

from .parity import compare_outputs, evaluate_onnx_model, torch_outputs

#: output names, in graph order
OUTPUTS: Tuple[str, str, str] = ("position", "rotation", "sigma")
INPUT = "image"
INPUT_KINDS = ("uint8", "float32")
MAX_OPSET = 20  # ORT static INT8 quantization does not support opset >= 21
DEFAULT_OPSET = 17

#: node-name prefixes of the graph's parts (first path component of the node name)
NODE_GROUPS: Dict[str, Tuple[str, ...]] = {
    "preprocess": ("preprocess",),
    "backbone": ("backbone",),
    "fc": ("fc",),
    "heads": ("fc_position", "fc_rotation", "fc_log_sigma"),
    "post": ("post_decode", "post_memory", "post_position", "post_rotation", "post_sigma"),
}

#: parity bounds with the PyTorch model (the issue's acceptance figures)
PARITY_POSITION_M = 1e-4
PARITY_ROTATION_DEG = 1e-3
#: simplified vs unsimplified graph must agree at least this well
SIMPLIFY_POSITION_M = 1e-5
SIMPLIFY_ROTATION_DEG = 1e-4


def _torch():
    return require("torch", "ONNX export", "pip install 'edgepose[train]'")


def build_export_module(model, input: str = "uint8"):
    """Wrap a :class:`~edgepose.train.model.PoseNet` as ``image -> (position, rotation, sigma)``.

    Each step is its own named submodule, so the ONNX node names say which part made them.
    """
    torch = _torch()
    from torch import nn

    # lazy: the model's torch pieces; the engines-from-a-bundle path (a Jetson) imports this module without torch
    from edgepose.train.model import canonical_quaternion
    from edgepose.train.pose_memory import blend_with_memory
    from edgepose.train.rotation_head import decode_rotation

    if input not in INPUT_KINDS:
        raise ConfigError(f"--input must be one of {INPUT_KINDS}, not {input!r}")

    class Preprocess(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, image):
            if input == "uint8":
                return self.net.normalize_input(image)  # (N,H,W,3) uint8 -> (N,3,H,W) float
            mean = self.net.pixel_mean.view(1, 3, 1, 1)
            std = self.net.pixel_std.view(1, 3, 1, 1)
            return (image - mean) / std

    class Denormalize(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, p):
            return p * self.net.position_scale + self.net.position_mean

    class QuaternionNormalize(nn.Module):
        def forward(self, q):
            return canonical_quaternion(q)

    class SigmaToWorld(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, log_sigma):
            scale = self.net.position_scale
            # the calibration of sigma (PoseNet.sigma_scale) is part of this FP32 post-processing;
            # one constant factor, so that one Mul (named /post_sigma/...) applies both
            return torch.exp(log_sigma) * (torch.cat([scale, torch.ones_like(scale)]) * self.net.sigma_scale)

    class RotationDecode(nn.Module):
        def __init__(self, kind):
            super().__init__()
            self.kind = kind

        def forward(self, raw):
            return decode_rotation(raw, self.kind)

    class MemoryBlend(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, h, out):
            return blend_with_memory(self.net.memory, h, out)

    class PoseNetExport(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.preprocess = Preprocess(net)
            self.backbone = net.backbone
            self.fc = net.fc
            self.fc_position = net.fc_position
            self.fc_rotation = net.fc_rotation
            self.fc_log_sigma = net.fc_log_sigma
            # a 6-D or log-quaternion head becomes a quaternion before anything reads it
            self.post_decode = RotationDecode(net.rotation_head) if net.rotation_head != "quaternion" else None
            self.post_memory = MemoryBlend(net)  # the pose memory (empty: not in the graph)
            self.post_position = Denormalize(net)
            self.post_rotation = QuaternionNormalize()
            self.post_sigma = SigmaToWorld(net)

        def forward(self, image):
            h = self.fc(self.backbone(self.preprocess(image)))
            rotation = self.fc_rotation(h)
            if self.post_decode is not None:
                rotation = self.post_decode(rotation)
            out = {"position": self.fc_position(h), "rotation": rotation, "log_sigma": self.fc_log_sigma(h)}
            if self.post_memory.net.memory.size:
                out = self.post_memory(h, out)
            return (self.post_position(out["position"]),
                    self.post_rotation(out["rotation"]),
                    self.post_sigma(out["log_sigma"]))

    return PoseNetExport(model).eval()


def node_group(name: str) -> Optional[str]:
    """The :data:`NODE_GROUPS` key of a node name like ``/fc_position/Gemm`` (or ``None``)."""
    first = name.lstrip("/").split("/", 1)[0]
    for group, prefixes in NODE_GROUPS.items():
        if first in prefixes:
            return group
    return None


def node_groups(model_or_path) -> Dict[str, list]:
    """``{group: [node names]}`` of an exported graph (ModelProto or path); unnamed -> ``"other"``."""
    onnx = require("onnx", "reading ONNX graphs")
    model = model_or_path if hasattr(model_or_path, "graph") else onnx.load(str(model_or_path))
    out: Dict[str, list] = {k: [] for k in NODE_GROUPS}
    out["other"] = []
    for n in model.graph.node:
        out[node_group(n.name) or "other"].append(n.name)
    return out


def adopt_orphan_nodes(proto) -> int:
    """Give every node outside :data:`NODE_GROUPS` (onnxsim names what it makes ``Squeeze_0``)
    the scope of the node that makes its first input, so that the passes choosing nodes by
    group (FP16's float32 block list, INT8's exclusions, the lint) treat it like its neighbours:
    a float16 ``Squeeze`` inside the FP32 post-processing would otherwise round the pose.
    Returns how many nodes were renamed. Graph nodes are in topological order (ONNX requires it)."""
    scope: Dict[str, str] = {}
    names = {n.name for n in proto.graph.node}
    renamed = 0
    for n in proto.graph.node:
        first = n.name.lstrip("/").split("/", 1)[0] if node_group(n.name) else None
        if first is None:
            first = next((scope[i] for i in n.input if i in scope), None)
            if first is not None:
                new, k = f"/{first}/{n.name or n.op_type}", 0
                while new in names:
                    k += 1
                    new = f"/{first}/{n.name or n.op_type}_{k}"
                names.add(new)
                n.name, renamed = new, renamed + 1
        if first is not None:
            scope.update({o: first for o in n.output})
    return renamed


def example_images(size: Sequence[int], n: int = 2, seed: int = 0) -> np.ndarray:
    """Deterministic smooth random images ``uint8 (n, H, W, 3)`` for ``size = (W, H)``."""
    W, H = int(size[0]), int(size[1])
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(n, max(2, H // 8), max(2, W // 8), 3))
    ys = np.linspace(0, coarse.shape[1] - 1, H).round().astype(int)
    xs = np.linspace(0, coarse.shape[2] - 1, W).round().astype(int)
    img = coarse[:, ys][:, :, xs] + rng.normal(0, 12, size=(n, H, W, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _batch_spec(batch, dynamic) -> Tuple[Optional[Tuple[int, int, int]], int]:
    if dynamic is None:
        if int(batch) < 1:
            raise ConfigError(f"batch must be >= 1, got {batch}")
        return None, int(batch)
    try:
        lo, opt, hi = (int(v) for v in dynamic)
    except (TypeError, ValueError):
        raise ConfigError(f"dynamic batch must be (min, opt, max), got {dynamic!r}") from None
    if not 1 <= lo <= opt <= hi:
        raise ConfigError(f"dynamic batch needs 1 <= min <= opt <= max, got {(lo, opt, hi)}")
    return (lo, opt, hi), opt


def export_onnx(model, path: Union[str, Path], input: str = "uint8", batch: int = 1,
                dynamic: Optional[Sequence[int]] = None, opset: int = DEFAULT_OPSET,
                simplify: bool = True, parity_images: Optional[np.ndarray] = None) -> dict:
    """Export ``model`` (a PoseNet) to ``path`` and check it.

    Args:
        input: ``"uint8"`` (NHWC, preprocessing in the graph) or ``"float32"`` (NCHW, 0..255).
        batch: fixed batch size when ``dynamic`` is None.
        dynamic: ``(min, opt, max)`` batch profile; the ONNX batch axis is then symbolic
            (``"batch"``) and the profile is returned for the TensorRT builder and manifest.
        opset: ONNX opset, at most :data:`MAX_OPSET` (INT8 Q/DQ tooling needs <= 20).
        simplify: run onnxsim and keep its graph only if it checks and matches.
        parity_images: ``uint8 (N, H, W, 3)`` frames at the network resolution for the parity
            checks; real frames should be passed. Without them, seeded synthetic frames are used
            (``info["parity"]["source"] == "synthetic"``).

    Returns a dict: ``path, input, opset, batch, dynamic, simplified, simplify_note,
    parity {source, n, max_position_m, max_rotation_deg, max_sigma_rel, ok}``.
    Raises :class:`EdgePoseError` when the exported graph fails the parity bounds.
    """
    torch = _torch()
    onnx = require("onnx", "ONNX export", "pip install 'edgepose[export]'")
    if not isinstance(opset, int) or not 7 <= opset <= MAX_OPSET:
        raise ConfigError(f"opset must be an integer in 7..{MAX_OPSET} (INT8 Q/DQ needs <= 20), got {opset!r}")
    profile, trace_batch = _batch_spec(batch, dynamic)
    W, H = model.config["input_size"]
    model = model.eval()
    wrapper = build_export_module(model, input)
    if parity_images is None:
        parity_images, source = example_images((W, H), n=max(2, trace_batch)), "synthetic"
    else:
        source = "given"
        parity_images = np.asarray(parity_images)
        if parity_images.shape[1:] != (H, W, 3):
            raise EdgePoseError(f"parity frames must be (N, {H}, {W}, 3) uint8 at the network resolution; "
                                f"got {parity_images.shape}", hint="apply edgepose.preprocess.resize_crop first")
    sample = as_model_input(parity_images[:1].repeat(trace_batch, axis=0), input)
    dyn_axes = None
    if profile is not None:
        dyn_axes = {INPUT: {0: "batch"}, **{o: {0: "batch"} for o in OUTPUTS}}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer/deprecation chatter of the TorchScript exporter
        torch.onnx.export(wrapper, (torch.from_numpy(sample),), buf, input_names=[INPUT],
                          output_names=list(OUTPUTS), opset_version=opset, dynamic_axes=dyn_axes,
                          do_constant_folding=True, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto, full_check=True)

    # Parity frames must fit a fixed batch: evaluate_onnx_model runs them in chunks.
    ref = torch_outputs(model, parity_images)
    out_raw = evaluate_onnx_model(proto, parity_images, optimization="disable")
    parity_raw = compare_outputs(out_raw, ref)

    simplified, note = False, "not requested"
    if simplify:
        proto_s, note = _simplify(proto, parity_images, out_raw)
        if proto_s is not None:
            proto, simplified = proto_s, True
    out = evaluate_onnx_model(proto, parity_images, optimization="all")
    parity = compare_outputs(out, ref)
    parity.update(source=source, n=int(len(parity_images)))
    parity["ok"] = bool(parity["max_position_m"] <= PARITY_POSITION_M
                        and parity["max_rotation_deg"] <= PARITY_ROTATION_DEG)
    if not parity["ok"]:
        raise EdgePoseError(
            f"the ONNX graph does not match the PyTorch model: max position diff "
            f"{parity['max_position_m']:.3g} m (bound {PARITY_POSITION_M}), max rotation diff "
            f"{parity['max_rotation_deg']:.3g} deg (bound {PARITY_ROTATION_DEG}); unsimplified graph: "
            f"{parity_raw['max_position_m']:.3g} m, {parity_raw['max_rotation_deg']:.3g} deg",
            hint="export with simplify=False / --no-simplify, or report the model and versions")
    adopt_orphan_nodes(proto)
    _set_metadata(proto, model, input)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, proto.SerializeToString())
    return {"path": str(path), "input": input, "opset": int(opset), "batch": None if profile else trace_batch,
            "dynamic": list(profile) if profile else None, "simplified": simplified,
            "simplify_note": note, "parity": parity}


def _set_metadata(proto, model, input: str) -> None:
    import json

    meta = {"edgepose.input": input, "edgepose.config": json.dumps(model.config, sort_keys=True)}
    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v


def _simplify(proto, images: np.ndarray, reference: Dict[str, np.ndarray]):
    """``(simplified proto or None, note)``; None when onnxsim fails or changes the outputs."""
    onnx = require("onnx", "ONNX export")

    try:
        onnxsim = require("onnxsim", "ONNX simplification", "pip install onnxsim")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            simp, ok = onnxsim.simplify(proto)
    except Exception as exc:  # onnxsim raises many types (checker, shape inference, RuntimeError)
        return None, f"onnxsim failed ({type(exc).__name__}: {str(exc)[:200]}); kept the unsimplified graph"
    if not ok:
        return None, "onnxsim's own check failed; kept the unsimplified graph"
    try:
        onnx.checker.check_model(simp, full_check=True)
        out = evaluate_onnx_model(simp, images, optimization="disable")
    except Exception as exc:
        return None, f"simplified graph does not run ({type(exc).__name__}: {str(exc)[:200]}); kept the unsimplified graph"
    d = compare_outputs(out, reference)
    if d["max_position_m"] > SIMPLIFY_POSITION_M or d["max_rotation_deg"] > SIMPLIFY_ROTATION_DEG:
        return None, (f"simplified graph changed outputs (position {d['max_position_m']:.3g} m, rotation "
                      f"{d['max_rotation_deg']:.3g} deg); kept the unsimplified graph")
    return simp, (f"simplified: {len(proto.graph.node)} -> {len(simp.graph.node)} nodes, outputs equal "
                  f"within {d['max_position_m']:.2g} m / {d['max_rotation_deg']:.2g} deg")
