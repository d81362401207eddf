"""Camera-resolution graphs: the camera frame in, the preprocessing rule inside the graph.

``edgepose-export RUN --camera-size 1920x1080`` adds, for every precision graph of the bundle,
a graph whose input is the camera frame itself, ``uint8 (N, h, w, 3)`` RGB (or BGR with
``--camera-channels bgr``): the host copies the frame into the input buffer and the engine
does the rest. The steps put before the network (node names ``/camera/...``), all float32:

    Cast(float) -> Slice(the source window the filter reads)
    [-> Reshape + ReduceMean(k x k blocks)] -> Transpose -> MatMul(A_x^T) over columns -> Round
    -> MatMul(A_y) over rows -> Round [-> Gather(channels 2,1,0) for BGR] -> Transpose

which is :func:`edgepose.resample.pooled_resample` (Pillow's anti-aliased bilinear resize over
the rule's crop box, as matrices, after a ``k x k`` box pre-filter). Its output replaces the
network's own ``Cast(uint8 -> float)`` of the input; everything after is the precision graph
unchanged (FP16's and INT8's own types included). Every op here is one ONNX Runtime and the
TensorRT 8.5-10.x ONNX parser run (Cast, Slice, Reshape, ReduceMean, MatMul, Round, Transpose,
Gather). Rounding after each pass as Pillow does (it keeps 8 bits between passes) makes the
graph's network input equal to the trainer's on all but ~0.04 % of pixels when no block mean
is taken (``k = 1``, up to ~8x downscaling).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from edgepose.argtypes import parse_size
from edgepose.atomic import atomic_write_bytes
from edgepose.bundle_files import CAMERA_CHANNELS
from edgepose.errors import ConfigError, EdgePoseError, require
from edgepose.resample import PooledResample, pooled_resample

from .graph_lint import tensorrt_graph_lint

CAMERA_PREFIX = "camera"
#: the manifest role of a camera-resolution graph (read by edgepose.runtime.camera)
CAMERA_ROLE = "camera-onnx"

Size = Tuple[int, int]


def parse_camera_size(text: str) -> Size:
    """``"1920x1080"`` -> ``(1920, 1080)``; :class:`ConfigError` saying what is expected otherwise
    (:func:`edgepose.argtypes.parse_size`, each side 1..:data:`~edgepose.input_spec.MAX_SIDE`).

    >>> parse_camera_size("1920x1080")
    (1920, 1080)
    """
    return parse_size(text, what="--camera-size")


def camera_filename(onnx_name: str, size: Size) -> str:
    """``model.fp16.onnx`` + ``(1920, 1080)`` -> ``model.fp16.cam1920x1080.onnx``."""
    stem = onnx_name[:-len(".onnx")] if onnx_name.endswith(".onnx") else onnx_name
    return f"{stem}.cam{int(size[0])}x{int(size[1])}.onnx"


def _input_cast(graph, name: str):
    """The one ``Cast`` node that reads graph input ``name`` (the network's uint8 entry)."""
    readers = [n for n in graph.node if name in n.input]
    if len(readers) != 1 or readers[0].op_type != "Cast":
        raise EdgePoseError(f"the graph's input {name!r} feeds {[(n.op_type, n.name) for n in readers]}; "
                            "a camera graph needs the uint8 input to go straight into one Cast",
                            hint="camera graphs exist for bundles exported with --input uint8 (the default)")
    return readers[0]


def _prefix_nodes(plan: PooledResample, src: str, out: str, channels: str) -> Tuple[list, list]:
    """``(nodes, initializers)`` that turn uint8 NHWC ``src`` into float32 NHWC ``out``."""
    from onnx import TensorProto, helper, numpy_helper

    nodes: List = []
    inits: List = []

    def const(name: str, arr) -> str:
        full = f"{CAMERA_PREFIX}.{name}"
        inits.append(numpy_helper.from_array(np.asarray(arr), full))
        return full

    def node(op: str, ins: Sequence[str], **attrs) -> str:
        name = f"/{CAMERA_PREFIX}/{op}_{len(nodes)}"
        o = f"{name}_output_0"
        nodes.append(helper.make_node(op, list(ins), [o], name=name, **attrs))
        return o

    y, x = plan.y, plan.x
    W, H = x.weights.shape[0], y.weights.shape[0]
    t = node("Cast", [src], to=TensorProto.FLOAT)  # TensorRT takes a uint8 input only into a Cast
    t = node("Slice", [t, const("win_start", np.array([y.start, x.start], np.int64)),
                       const("win_stop", np.array([y.stop, x.stop], np.int64)),
                       const("win_axes", np.array([1, 2], np.int64))])
    if y.k > 1:  # k x k box pre-filter in NHWC: one read of every pixel
        t = node("Reshape", [t, const("blocks", np.array([-1, y.cells, y.k, x.cells, x.k, 3], np.int64))])
        t = node("ReduceMean", [t], axes=[2, 4], keepdims=0)
    # Pillow's order: columns first, rounded to grey levels, then rows, rounded
    t = node("Transpose", [t], perm=[0, 1, 3, 2])                                  # (N, cy, 3, cx)
    t = node("MatMul", [t, const("cols", np.ascontiguousarray(x.weights.T).astype(np.float32))])  # (N, cy, 3, W)
    t = node("Round", [t])
    t = node("Reshape", [t, const("rows_in", np.array([-1, y.cells, 3 * W], np.int64))])
    t = node("MatMul", [const("rows", y.weights.astype(np.float32)), t])          # (N, H, 3*W)
    t = node("Round", [t])
    t = node("Reshape", [t, const("rows_out", np.array([-1, H, 3, W], np.int64))])
    if channels == "bgr":
        t = node("Gather", [t, const("bgr_to_rgb", np.array([2, 1, 0], np.int64))], axis=2)
    nodes.append(helper.make_node("Transpose", [t], [out], name=f"/{CAMERA_PREFIX}/Transpose_out", perm=[0, 1, 3, 2]))
    return nodes, inits


def add_camera_input(model, size: Size, channels: str = "rgb"):
    """A copy of ``model`` (an exported precision graph, ``ModelProto``) whose input is the
    camera frame ``uint8 (N, h, w, 3)`` for ``size = (w, h)``; the batch axis is kept as the
    network's (fixed or symbolic). Raises :class:`EdgePoseError` when the graph does not take
    uint8 NHWC."""
    onnx = require("onnx", "camera-resolution graphs", "pip install 'edgepose[export]'")
    from onnx import TensorProto, helper

    if channels not in CAMERA_CHANNELS:
        raise ConfigError(f"--camera-channels {channels!r}: expected one of {', '.join(CAMERA_CHANNELS)}")
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    if len(g.input) != 1 or g.input[0].type.tensor_type.elem_type != TensorProto.UINT8:
        raise EdgePoseError("a camera graph needs a network with one uint8 NHWC input",
                            hint="camera graphs exist for bundles exported with --input uint8 (the default)")
    inp = g.input[0]
    dims = inp.type.tensor_type.shape.dim
    batch = dims[0].dim_param or int(dims[0].dim_value)
    cast = _input_cast(g, inp.name)
    plan = pooled_resample(size, _network_size(m))
    nodes, inits = _prefix_nodes(plan, inp.name, f"{CAMERA_PREFIX}_rgb_f32", channels)
    if cast.attribute[0].i == TensorProto.FLOAT:  # the prefix's float32 output replaces the Cast's
        last = nodes[-1]
        last.output[0] = cast.output[0]
    else:  # e.g. a graph that casts uint8 straight to float16: keep that type after the prefix
        nodes.append(helper.make_node("Cast", [nodes[-1].output[0]], [cast.output[0]],
                                      name=f"/{CAMERA_PREFIX}/Cast_to_network", to=cast.attribute[0].i))
    kept = [n for n in g.node if n is not cast]
    del g.node[:]
    g.node.extend(nodes + kept)
    g.initializer.extend(inits)
    w, h = int(size[0]), int(size[1])
    new_in = helper.make_tensor_value_info(inp.name, TensorProto.UINT8, [batch, h, w, 3])
    del g.input[:]
    g.input.extend([new_in])
    entry = m.metadata_props.add()
    entry.key, entry.value = "edgepose.camera", f"{w}x{h} {channels}"
    onnx.checker.check_model(m)
    return m


def write_camera_graph(src_onnx: Union[str, Path], dst: Union[str, Path], size: Size,
                       channels: str = "rgb") -> dict:
    """Write the camera graph of ``src_onnx`` at ``dst`` (atomically); returns its record
    ``{"path", "size": [w, h], "channels", "pool": k, "window": [x0, y0, x1, y1]}``."""
    onnx = require("onnx", "camera-resolution graphs", "pip install 'edgepose[export]'")
    src = onnx.load(str(src_onnx))
    plan = pooled_resample(size, _network_size(src))  # the plan add_camera_input builds, for the record
    atomic_write_bytes(Path(dst), add_camera_input(src, size, channels).SerializeToString())
    return {"path": str(dst), "size": [int(size[0]), int(size[1])], "channels": channels,
            "pool": plan.x.k, "window": [plan.x.start, plan.y.start, plan.x.stop, plan.y.stop]}


def _network_size(model) -> Size:
    """``(W, H)`` of a network graph's uint8 NHWC input."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return int(dims[2].dim_value), int(dims[1].dim_value)


def camera_sizes(values: Optional[Sequence[str]]) -> List[Size]:
    """The ``--camera-size`` values parsed, duplicates dropped, in the order given."""
    out: List[Size] = []
    for v in values or ():
        s = parse_camera_size(v)
        if s not in out:
            out.append(s)
    return out


def add_camera_graphs(asm, onnx_files, sizes: Sequence[Size], channels: str = "rgb", log=print) -> List[str]:
    """Write and list, in a bundle being assembled (:class:`~.bundle_writer.BundleAssembly`),
    the camera graph of every ``onnx_files`` entry (``{precision: relative path}``) for every
    frame size; each is linted like the precision graphs. Returns the relative paths written.
    The manifest lists each as role ``camera-onnx`` with ``camera: {size, channels, pool, window}``."""
    written = []
    for size in sizes:
        for precision, rel in onnx_files.items():
            cam_rel = camera_filename(rel, size)
            rec = write_camera_graph(asm.path(rel), asm.path(cam_rel), size, channels)
            tensorrt_graph_lint(asm.path(cam_rel), precision)
            asm.register(cam_rel, CAMERA_ROLE, precision,
                         camera={k: rec[k] for k in ("size", "channels", "pool", "window")})
            written.append(cam_rel)
        log(f"camera graphs for {size[0]}x{size[1]} {channels} frames: "
            + ", ".join(camera_filename(rel, size) for rel in onnx_files.values()))
    return written
