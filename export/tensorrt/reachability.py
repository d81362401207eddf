"""Which TensorRT layers to keep FP32 on builds that are not strongly typed, chosen by graph
reachability instead of by layer-name prefix (pure Python, tested without TensorRT).

Why not names: onnx-tensorrt names a layer after its ONNX node only where the importer calls
``registerLayer(layer, getNodeName(node))``. A Clip without a max (every ``clamp_min(eps)``)
becomes unnamed ElementWise layers and a FLT_MAX constant (``elementwiseClipHelper``),
broadcasts add unnamed Shuffle layers (``broadcastTensor``), and initializers become constants
named after the initializer (``preprocess.net.position_mean``). Tensor names, on the other
hand, are kept: ``ImporterContext::registerTensor`` names every node output tensor after its
ONNX output (onnx-tensorrt ``ImporterContext.cpp``).

So the choice is made on tensors:

1. :func:`post_processing_inputs` reads, in the ONNX graph we wrote, the tensors that enter the
   ``/post_*`` groups from the rest of the network (the heads' outputs and, with a pose memory,
   the FC features it compares): the *start tensors*.
2. :func:`choose_fp32_layers` walks the TensorRT network (a list of :class:`LayerInfo`, read by
   :func:`network_layers` on the device): every layer downstream of a start tensor that reaches
   a network output, minus the layers upstream of a start tensor (the heads themselves, even
   when a Gemm was imported as several layers), plus the constant-only layers that feed them
   (initializers, the FLT_MAX of a Clip, the broadcast Shuffle of a constant).
3. As Polygraphy's ``debug precision`` does (``tools/Polygraphy/polygraphy/tools/debug/
   subtool/precision.py``, ``mark_layers``), constant layers, layers with a shape-tensor output
   and layers with a non-float output (INT32 TopK indices, ArgMax, Equal, Shape) are not given a
   precision: NVIDIA on NVIDIA/TensorRT#3177, "just don't set those layers". They are reported
   as skipped, with the reason; the engine's own report (:mod:`.inspector`) then says what ran.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Sequence, Set, Tuple

#: ``trt.DataType`` names a layer may be given FP32 precision for (Polygraphy: float32, float16, int8)
ACTIVATION_TYPES = ("FLOAT", "HALF", "INT8", "BF16")


@dataclass(frozen=True)
class LayerInfo:
    """One layer of a TensorRT network, as :func:`network_layers` reads it.

    Attributes:
        name: ``ILayer.name`` (may be ``"(Unnamed Layer* 12) [ElementWise]"``).
        type: ``trt.LayerType`` name, e.g. ``"CONSTANT"``, ``"SHAPE"``, ``"MATRIX_MULTIPLY"``.
        inputs, outputs: tensor names (an absent optional input is ``""``).
        output_types: ``trt.DataType`` names of the outputs (``"FLOAT"``, ``"HALF"``, ``"INT32"``, ``"BOOL"``).
        shape_outputs: per output, ``True`` where it is a shape tensor (not an execution tensor).
    """

    name: str
    type: str
    inputs: Tuple[str, ...]
    outputs: Tuple[str, ...]
    output_types: Tuple[str, ...]
    shape_outputs: Tuple[bool, ...] = ()


@dataclass(frozen=True)
class Fp32Choice:
    """What :func:`choose_fp32_layers` decided.

    Attributes:
        post: indices of every post-processing layer found (pinned or skipped).
        pin: indices to give ``precision = float32`` and float32 outputs.
        skipped: ``{index: reason}`` for post-processing layers left without a precision.
    """

    post: Tuple[int, ...]
    pin: Tuple[int, ...]
    skipped: Dict[int, str] = field(default_factory=dict)

    def to_json(self, layers: Sequence[LayerInfo]) -> dict:
        reasons: Dict[str, int] = {}
        for r in self.skipped.values():
            reasons[r] = reasons.get(r, 0) + 1
        return {"post_processing_layers": len(self.post), "pinned_fp32": len(self.pin),
                "skipped": reasons, "chosen_by": "reachability from the post-processing inputs to the outputs"}


def post_processing_inputs(model, post_prefixes: Iterable[str]) -> List[str]:
    """Tensors that enter the ``/post_*`` nodes of an ONNX ``ModelProto`` from outside them.

    Initializers and Constant-node outputs are data, not start tensors (they are reached as
    constant feeders). Returned in graph order, without repeats.
    """
    prefixes = tuple("/" + p.strip("/") + "/" for p in post_prefixes)
    nodes = list(model.graph.node)
    producer = {o: n for n in nodes for o in n.output}
    initializers = {t.name for t in model.graph.initializer}
    out: List[str] = []
    for n in nodes:
        if not n.name.startswith(prefixes):
            continue
        for t in n.input:
            p = producer.get(t)
            if not t or t in initializers or p is None or p.name.startswith(prefixes) or p.op_type == "Constant":
                continue
            if t not in out:
                out.append(t)
    return out


def _closure(seeds: Iterable[int], step) -> Set[int]:
    seen: Set[int] = set()
    stack = list(seeds)
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        stack.extend(step(i))
    return seen


def choose_fp32_layers(layers: Sequence[LayerInfo], start_tensors: Sequence[str],
                       output_tensors: Sequence[str]) -> Fp32Choice:
    """The post-processing layers of a TensorRT network and which of them to pin to FP32.

    ``start_tensors`` come from :func:`post_processing_inputs`; ``output_tensors`` are the
    network outputs. Raises nothing: an empty ``post`` means the start tensors were not found
    (the caller refuses the build).
    """
    producer: Dict[str, int] = {}
    consumers: Dict[str, List[int]] = {}
    for i, layer in enumerate(layers):
        for t in layer.outputs:
            producer[t] = i
        for t in layer.inputs:
            if t:
                consumers.setdefault(t, []).append(i)

    def ups(i: int) -> List[int]:
        return [producer[t] for t in layers[i].inputs if t in producer]

    def downs(i: int) -> List[int]:
        return [c for t in layers[i].outputs for c in consumers.get(t, [])]

    starts = [t for t in start_tensors if t in producer or t in consumers]
    before = _closure([producer[t] for t in starts if t in producer], ups)  # the heads and all above them
    after = _closure([c for t in starts for c in consumers.get(t, [])], downs)
    to_outputs = _closure([producer[t] for t in output_tensors if t in producer], ups)
    post = (after & to_outputs) - before

    # constant feeders: layers that depend on no network input and feed the post-processing
    input_free: Dict[int, bool] = {}

    def is_input_free(i: int) -> bool:
        if i not in input_free:
            input_free[i] = False  # guard against cycles (none in a TensorRT network)
            input_free[i] = all(t in producer and is_input_free(producer[t]) for t in layers[i].inputs if t)
        return input_free[i]

    feeders = _closure([u for i in post for u in ups(i) if u not in post and is_input_free(u)],
                       lambda i: [u for u in ups(i) if is_input_free(u)])
    chosen = sorted(post | feeders)
    pin: List[int] = []
    skipped: Dict[int, str] = {}
    for i in chosen:
        reason = _skip_reason(layers[i])
        if reason:
            skipped[i] = reason
        else:
            pin.append(i)
    return Fp32Choice(post=tuple(chosen), pin=tuple(pin), skipped=skipped)


def _skip_reason(layer: LayerInfo) -> str:
    """Why a layer takes no precision (Polygraphy's ``mark_layers`` rule), or ``""``."""
    if layer.type == "CONSTANT":
        return "constant"
    if any(layer.shape_outputs):
        return "shape-tensor output"
    bad = [t for t in layer.output_types if t not in ACTIVATION_TYPES]
    if bad:
        return f"non-float output ({bad[0]})"
    return ""


def network_layers(network) -> List[LayerInfo]:
    """Read a ``trt.INetworkDefinition`` into :class:`LayerInfo` records (needs TensorRT)."""
    out = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        ins = []
        for j in range(layer.num_inputs):
            t = layer.get_input(j)
            ins.append(t.name if t is not None else "")
        outs = [layer.get_output(j) for j in range(layer.num_outputs)]
        out.append(LayerInfo(
            name=str(layer.name), type=str(layer.type).split(".")[-1], inputs=tuple(ins),
            outputs=tuple(t.name for t in outs), output_types=tuple(str(t.dtype).split(".")[-1] for t in outs),
            shape_outputs=tuple(not bool(getattr(t, "is_execution_tensor", True)) for t in outs)))
    return out
