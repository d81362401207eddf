"""FP32 post-processing by construction, per TensorRT version and route (issue 19, defects 1-3).

The graphs are real: a default-shaped PoseNet (6-D rotation head, a 16-view pose memory)
exported by the exporter, its FP16 pass and its Q/DQ pass. TensorRT is not here, so the
network it would parse is modelled by :func:`trt_layers`, after onnx-tensorrt's importers:
one layer per node named after it, tensors named after their ONNX outputs
(``ImporterContext::registerTensor``), initializers and Constant nodes as CONSTANT layers,
a Gemm as an unnamed MatrixMultiply plus the named bias ElementWise, a Clip without a max as
unnamed ElementWise layers around an unnamed FLT_MAX constant (``elementwiseClipHelper``), and
an unnamed Shuffle between a constant and the elementwise layer it is broadcast into
(``broadcastTensor``). The oracle is the exporter's own node naming: every float-producing layer
made for a ``/post_*`` node must be pinned, none made for the backbone, the FC or the heads.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from edgepose.export.tensorrt.plan import TrtCaps, plan_build  # noqa: E402
from edgepose.export.tensorrt.reachability import (LayerInfo, choose_fp32_layers,  # noqa: E402
                                                   post_processing_inputs)

POST = ("post_decode", "post_memory", "post_position", "post_rotation", "post_sigma")
VERSIONS = ("8.5.2.2", "8.6.2", "10.0.1", "10.3.0", "11.0.0", "11.4.0")
ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Pow", "Less", "Equal", "Where", "Max", "Min"}
DTYPES = {1: "FLOAT", 10: "HALF", 3: "INT8", 6: "INT32", 7: "INT32", 9: "BOOL"}


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """``{precision: ModelProto}`` of a 6-D head + pose memory PoseNet (about 2 s)."""
    from edgepose.export.fp16 import to_fp16
    from edgepose.export.int8.qdq import quantize_int8
    from edgepose.export.onnx_export import export_onnx
    from edgepose.train.memory_fit import fc_features
    from edgepose.train.model import PoseNet

    d = tmp_path_factory.mktemp("reach")
    torch.manual_seed(0)
    m = PoseNet("efficientnet_lite0", "none", input_size=(48, 32), hidden=64, dropout=0.0,
                position_mean=(50, -20, 3), position_scale=2.0, rotation_head="6d").eval()
    r = np.random.default_rng(0)
    x = r.integers(0, 255, (16, 32, 48, 3), dtype=np.uint8)
    m.memory.store(fc_features(m, torch.from_numpy(x), torch.device("cpu")),
                   torch.from_numpy(r.normal(size=(16, 3))).float(), torch.from_numpy(r.normal(size=(16, 4))).float(), 4)
    m.memory.blend.copy_(torch.tensor([0.5, 0.5]))
    m.memory.disagreement.copy_(torch.tensor([1.0, 1.0]))
    m.config.update(memory_size=m.memory.size, memory_k=m.memory.k)
    export_onnx(m, d / "m.onnx", dynamic=(1, 4, 8), parity_images=x[:8])
    to_fp16(d / "m.onnx", d / "m.fp16.onnx")
    with pytest.warns(Warning):  # 16 calibration frames: the pass warns, the graph is what we need
        quantize_int8(d / "m.onnx", d / "m.int8.onnx", calib_images=x)
    return {p: onnx.load(str(d / f)) for p, f in (("fp32", "m.onnx"), ("fp16", "m.fp16.onnx"),
                                                  ("int8", "m.int8.onnx"))}


def _types(model) -> Dict[str, int]:
    g = onnx.shape_inference.infer_shapes(model).graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(g.input) + list(g.value_info) + list(g.output)}
    types.update({t.name: t.data_type for t in g.initializer})
    for n in g.node:
        if n.op_type == "Cast":
            types[n.output[0]] = next(a.i for a in n.attribute if a.name == "to")
        if n.op_type == "Constant":
            types[n.output[0]] = next(a.t.data_type for a in n.attribute if a.name == "value")
    return types


def trt_layers(model) -> Tuple[List[LayerInfo], Dict[str, List[int]], List[str]]:
    """A model of the network onnx-tensorrt would build: ``(layers, {node name: layer indices}, outputs)``."""
    types = _types(model)
    g = model.graph
    inits = {t.name for t in g.initializer}
    const_nodes = {n.output[0] for n in g.node if n.op_type == "Constant"}
    layers: List[LayerInfo] = []
    made: Dict[str, List[int]] = {}
    constants: Dict[str, str] = {}

    def add(name, kind, ins, outs, out_types, shape=False):
        layers.append(LayerInfo(name, kind, tuple(ins), tuple(outs), tuple(out_types), (shape,) * len(outs)))
        return len(layers) - 1

    def unnamed(kind):
        return f"(Unnamed Layer* {len(layers)}) [{kind}]"

    def constant(t):
        if t not in constants:
            add(t if t in inits else unnamed("Constant"), "CONSTANT", [], [t], [DTYPES.get(types.get(t, 1), "INT32")])
            constants[t] = t
        return t

    for n in g.node:
        if n.op_type == "Constant":
            continue
        idx: List[int] = []
        ins = []
        for t in n.input:
            if t in inits or t in const_nodes:
                c = constant(t)
                if n.op_type in ELEMENTWISE:  # broadcastTensor: an unnamed Shuffle of the constant
                    b = f"{c}:bcast:{n.name}"
                    idx.append(add(unnamed("Shuffle"), "SHUFFLE", [c], [b], [DTYPES.get(types.get(t, 1), "INT32")]))
                    c = b
                ins.append(c)
            else:
                ins.append(t)
        out_types = [DTYPES.get(types.get(o, 1), "INT32") for o in n.output]
        if n.op_type == "Gemm":
            idx.append(add(unnamed("Matrix Multiply"), "MATRIX_MULTIPLY", ins[:2], [n.name + ":mm"], out_types))
            idx.append(add(n.name, "ELEMENTWISE", [n.name + ":mm", ins[2]], n.output, out_types))
        elif n.op_type == "Clip" and (len(n.input) < 3 or not n.input[2]):  # elementwiseClipHelper
            idx.append(add(unnamed("ElementWise"), "ELEMENTWISE", ins[:2], [n.name + ":max"], out_types))
            fmax = add(unnamed("Constant"), "CONSTANT", [], [n.name + ":fltmax"], out_types)
            idx.append(fmax)
            idx.append(add(unnamed("ElementWise"), "ELEMENTWISE", [n.name + ":max", n.name + ":fltmax"], n.output,
                           out_types))
        else:
            kind = {"Shape": "SHAPE", "MatMul": "MATRIX_MULTIPLY", "TopK": "TOPK", "Conv": "CONVOLUTION"}.get(
                n.op_type, n.op_type.upper())
            idx.append(add(n.name, kind, ins, n.output, out_types, shape=n.op_type == "Shape"))
        made[n.name] = idx
    return layers, made, [o.name for o in g.output]


def _is_post(name: str) -> bool:
    return name.startswith(tuple(f"/{p}/" for p in POST))


def test_every_post_processing_layer_of_the_fp32_and_fp16_graphs_is_pinned_and_no_head_or_backbone(graphs):
    for precision in ("fp32", "fp16", "int8"):
        model = graphs[precision]
        layers, made, outputs = trt_layers(model)
        choice = choose_fp32_layers(layers, post_processing_inputs(model, POST), outputs)
        pinned = set(choice.pin)
        post_nodes = [name for name in made if _is_post(name)]
        assert len(post_nodes) > 150  # decode (~90) and memory (~70) included: 11 of 162 before the fix
        for name in post_nodes:
            for i in made[name]:
                layer = layers[i]
                floats = all(t in ("FLOAT", "HALF") for t in layer.output_types)
                if layer.type == "CONSTANT" or not floats or layer.type == "SHAPE":
                    assert i not in pinned, (precision, layer)  # defect 3: no precision on these
                    assert i in choice.skipped
                else:
                    assert i in pinned, (precision, name, layer)
        for name, idx in made.items():
            if not _is_post(name) and name.startswith(("/backbone", "/fc", "/preprocess")):
                assert not pinned & set(idx), (precision, name)


def test_unnamed_clip_and_broadcast_layers_and_initializer_constants_are_reached(graphs):
    """Defect 2: the layers a name prefix cannot find."""
    model = graphs["fp32"]
    layers, made, outputs = trt_layers(model)
    choice = choose_fp32_layers(layers, post_processing_inputs(model, POST), outputs)
    clip = made["/post_memory/Clip"]
    assert [layers[i].name.startswith("(Unnamed") for i in clip] == [True, True, True]
    assert {clip[0], clip[2]} <= set(choice.pin) and clip[1] in choice.skipped  # FLT_MAX constant: skipped
    mean = [i for i, layer in enumerate(layers) if layer.inputs == ("preprocess.net.position_mean",)]
    assert mean and set(mean) <= set(choice.pin)  # the broadcast Shuffle of the position mean
    assert any(layers[i].name == "preprocess.net.position_mean" for i in choice.post)


def test_shape_and_int32_layers_take_no_precision():
    """Defect 3: Shape, TopK (INT32 indices), ArgMax, Equal, Cast-to-int are skipped with a reason."""
    L = LayerInfo
    layers = [L("head", "ELEMENTWISE", ("x",), ("h",), ("FLOAT",)),
              L("/post_memory/MatMul", "MATRIX_MULTIPLY", ("h",), ("s",), ("FLOAT",)),
              L("/post_memory/TopK", "TOPK", ("s",), ("v", "i"), ("FLOAT", "INT32")),
              L("/post_memory/Shape", "SHAPE", ("h",), ("shp",), ("INT32",), (True,)),
              L("/post_memory/Gather", "GATHER", ("i",), ("g",), ("FLOAT",)),
              L("/post_rotation/Mul", "ELEMENTWISE", ("g", "v", "shp"), ("rotation",), ("FLOAT",))]
    c = choose_fp32_layers(layers, ["h"], ["rotation"])
    assert c.pin == (1, 4, 5) and c.skipped == {2: "non-float output (INT32)", 3: "shape-tensor output"}
    assert 0 not in c.post  # the head producing the start tensor is not post-processing


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("precision,mode", [("fp32", "qdq"), ("fp16", "qdq"), ("int8", "qdq"), ("int8", "calibrator")])
def test_post_processing_is_fp32_on_every_route_and_version(graphs, version, precision, mode):
    """Done-when 1: by the plan's own decisions, per TensorRT version 8.5-11.x."""
    caps = TrtCaps.for_version(version)
    if mode == "calibrator" and not caps.calibrator:
        pytest.skip("no implicit calibrator on TensorRT 11 (refused by the plan, tested elsewhere)")
    plan = plan_build(caps, precision, int8_mode=mode)
    model = graphs[plan.onnx_precision]
    assert "TF32" in plan.clear_flags  # defect 4: FP32 layers are not TF32
    if precision == "fp32":
        assert not {"FP16", "INT8"} & set(plan.flags) and not plan.pin_fp32
        return
    if plan.strongly_typed:  # the ONNX types decide: every /post_* output is float32 (or integer)
        types = _types(model)
        post = [n for n in model.graph.node if _is_post(n.name)]
        assert len(post) > 150
        assert all(types.get(o) not in (10, 16) for n in post for o in n.output), plan
        assert not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in post)
    else:
        assert plan.pin_fp32 and "OBEY_PRECISION_CONSTRAINTS" in plan.flags
        layers, made, outputs = trt_layers(model)
        choice = choose_fp32_layers(layers, post_processing_inputs(model, POST), outputs)
        want = {i for name, idx in made.items() if _is_post(name) for i in idx
                if layers[i].type not in ("CONSTANT", "SHAPE") and set(layers[i].output_types) <= {"FLOAT", "HALF"}}
        assert want and want <= set(choice.pin)


def test_post_processing_inputs_are_the_head_outputs_and_the_memory_features(graphs):
    starts = post_processing_inputs(graphs["fp32"], POST)
    assert set(starts) == {"/fc/fc.1/Relu_output_0", "/fc_position/Gemm_output_0", "/fc_rotation/Gemm_output_0",
                           "/fc_log_sigma/Gemm_output_0"}


# ------------------------------------------------------------------ defect 8: lint gaps
def _edit(model):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    return m


def test_the_lint_sees_a_memory_matmul_computed_in_fp16(graphs):
    """The FP32-post-processing walk used to stop at the memory's MatMul (a head op)."""
    from onnx import TensorProto, helper, numpy_helper

    from edgepose.export.graph_lint import lint_model

    m = _edit(graphs["fp32"])
    g = m.graph
    i = next(k for k, n in enumerate(g.node) if n.name == "/post_memory/MatMul")
    mm = g.node[i]
    w = next(t for t in g.initializer if t.name == mm.input[1])
    g.initializer.append(numpy_helper.from_array(numpy_helper.to_array(w).astype(np.float16), "w16"))
    src, out = mm.input[0], mm.output[0]
    cast_in = helper.make_node("Cast", [src], ["q16"], name="/post_memory/Cast16", to=TensorProto.FLOAT16)
    new_mm = helper.make_node("MatMul", ["q16", "w16"], ["s16"], name="/post_memory/MatMul")
    cast_out = helper.make_node("Cast", ["s16"], [out], name="/post_memory/Cast32", to=TensorProto.FLOAT)
    del g.node[i]
    for k, n in enumerate((cast_in, new_mm, cast_out)):
        g.node.insert(i + k, n)
    found = {(v.rule, v.node) for v in lint_model(m)}
    assert ("fp32-post-processing", "node '/post_memory/MatMul' (MatMul)") in found
    assert not lint_model(graphs["fp32"])


def test_the_lint_refuses_qdq_inside_post_processing(graphs):
    from onnx import TensorProto, helper, numpy_helper

    from edgepose.export.graph_lint import lint_model

    m = _edit(graphs["fp32"])
    g = m.graph
    i = next(k for k, n in enumerate(g.node) if n.name == "/post_position/Mul")
    x = g.node[i].input[0]
    g.initializer.extend([numpy_helper.from_array(np.array(0.05, np.float32), "qs"),
                          numpy_helper.from_array(np.array(0, np.int8), "qz")])
    q = helper.make_node("QuantizeLinear", [x, "qs", "qz"], ["xq"], name="/post_position/x_QuantizeLinear")
    dq = helper.make_node("DequantizeLinear", ["xq", "qs", "qz"], ["xdq"], name="extra_DequantizeLinear")
    g.node[i].input[0] = "xdq"
    g.node.insert(i, dq)
    g.node.insert(i, q)
    found = {(v.rule, v.node) for v in lint_model(m)}
    assert ("no-qdq-in-post-processing", "node '/post_position/x_QuantizeLinear' (QuantizeLinear)") in found
    assert ("no-qdq-in-post-processing", "node 'extra_DequantizeLinear' (DequantizeLinear)") in found
