"""``export_bundle(ExportConfig)``: the exporter without its CLI, the pass table and its hooks.

A tiny PoseNet checkpoint without a dataset (fp32/fp16 need no frames) and
``--engine no`` keep each export to a few seconds.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from edgepose.bundle import MANIFEST  # noqa: E402
from edgepose.errors import ConfigError, EdgePoseError  # noqa: E402
from edgepose.export import ExportConfig, export_bundle  # noqa: E402
from edgepose.export import passes as P  # noqa: E402
from edgepose.export.config import parse_batch, parse_precisions  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_posenet):
    from edgepose.train.model import CHECKPOINT_FORMAT

    folder = tmp_path_factory.mktemp("api") / "run"
    folder.mkdir()
    torch.save({"format": CHECKPOINT_FORMAT, "config": tiny_posenet.config, "model": tiny_posenet.state_dict(),
                "data": {"root": str(folder / "no-such-data")}, "metrics": {}}, folder / "final.pt")
    return folder


def quick(run_dir, out, **kw):
    return ExportConfig(run_dir, out=out, engine="no", **kw)


def test_config_names_the_flag_of_a_bad_value(tmp_path):
    for kw, flag in (({"calib_frames": 0}, "--calib-frames"), ({"val_frames": 0}, "--val-frames"),
                     ({"max_drift_m": -1.0}, "--max-drift-m"), ({"engine": "maybe"}, "--engine"),
                     ({"dynamic_batch": (4, 2, 8)}, "--dynamic-batch"), ({"calib_method": "mse"}, "--calib-method")):
        with pytest.raises(ConfigError, match=flag):
            ExportConfig(tmp_path, **kw).check()
    with pytest.raises(ConfigError, match="bf16"):
        ExportConfig(tmp_path, precisions=["fp32", "bf16"])
    assert ExportConfig(tmp_path, precisions=["int8", "FP32"]).precisions == ["fp32", "int8"]
    assert parse_precisions("int8,fp16", ()) == ["fp16", "int8"]
    assert parse_batch(2, None) == ((2, 2, 2), False) and parse_batch(1, "1:2:4") == ((1, 2, 4), True)
    assert ExportConfig(tmp_path, dynamic_batch=(1, 2, 4)).batch_profile == (1, 2, 4)


def test_every_precision_has_a_pass():
    from edgepose.bundle import PRECISIONS

    assert list(P.PASSES) == list(PRECISIONS)


def test_export_bundle_runs_the_pass_table_and_graph_checks(run_dir, tmp_path, monkeypatch):
    """Every written graph goes through GRAPH_CHECKS; their summaries land in the manifest."""
    import onnx

    seen = []

    def count_nodes(path, precision):
        seen.append((path.name, precision))
        return {"nodes": len(onnx.load(str(path)).graph.node)}

    monkeypatch.setattr(P, "GRAPH_CHECKS", [count_nodes])
    logs = []
    result = export_bundle(quick(run_dir, tmp_path / "b", precisions=["fp32", "fp16"]), log=logs.append)
    assert result.ok and not result.from_bundle and result.engines == []
    assert result.onnx_files == {"fp32": "model.onnx", "fp16": "model.fp16.onnx"}
    assert seen == [("model.onnx", "fp32"), ("model.fp16.onnx", "fp16")]
    m = json.loads((tmp_path / "b" / MANIFEST).read_text())
    assert m == result.manifest.to_json()
    fp16 = onnx.load(str(tmp_path / "b" / "model.fp16.onnx"))
    assert m["export"]["onnx"]["fp16"]["checks"] == {"count_nodes": {"nodes": len(fp16.graph.node)}}
    assert m["validation"] == {} and any("not measured" in line for line in logs)
    assert result.engine_note is None  # --engine no: nothing to build, nothing to say


def test_a_failing_graph_check_stops_the_export_and_writes_nothing(run_dir, tmp_path, monkeypatch):
    def refuse_fp16(path, precision):
        if precision == "fp16":
            raise EdgePoseError(f"{path.name}: refused by the test check")
        return None

    monkeypatch.setattr(P, "GRAPH_CHECKS", [refuse_fp16])
    with pytest.raises(EdgePoseError, match="refused by the test check"):
        export_bundle(quick(run_dir, tmp_path / "b", precisions=["fp32", "fp16"]))
    assert not (tmp_path / "b").exists()
    assert list(tmp_path.iterdir()) == []  # no temporary folder left either


def test_a_new_precision_pass_is_one_table_entry(run_dir, tmp_path, monkeypatch):
    """The fp16 pass replaced through the table is what the bundle gets (keep_heads variant)."""
    import onnx

    calls = []

    def fp16_heads(ctx):
        calls.append(ctx.out.name)
        from edgepose.export.fp16 import to_fp16

        return to_fp16(ctx.fp32, ctx.out, keep_heads_fp32=True)

    monkeypatch.setitem(P.PASSES, "fp16", fp16_heads)
    export_bundle(quick(run_dir, tmp_path / "b", precisions=["fp16"]), log=lambda s: None)
    assert calls == ["model.fp16.onnx"]
    g = onnx.load(str(tmp_path / "b" / "model.fp16.onnx")).graph
    heads = {i.name: i.data_type for i in g.initializer if "fc_position" in i.name}
    assert heads and set(heads.values()) == {onnx.TensorProto.FLOAT}  # kept in float32 by the replacement


def test_int8_without_frames_is_a_user_error_before_writing(run_dir, tmp_path):
    with pytest.raises(EdgePoseError, match="--calib DATA"):
        export_bundle(quick(run_dir, tmp_path / "b", precisions=["int8"]))
    assert not (tmp_path / "b").exists()


def test_engines_for_an_existing_bundle_without_tensorrt(run_dir, tmp_path):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    export_bundle(quick(run_dir, tmp_path / "b", precisions=["fp32"]), log=lambda s: None)
    before = (tmp_path / "b" / MANIFEST).read_bytes()
    r = export_bundle(ExportConfig(tmp_path / "b"))
    assert r.from_bundle and r.precisions == ["fp32"] and r.engines == [] and r.manifest is None
    assert "--engine yes" in r.engine_note and "trtexec" in r.engine_note
    assert (tmp_path / "b" / MANIFEST).read_bytes() == before  # nothing rewritten
    assert np.all([p.name != "model.fp16.onnx" for p in (tmp_path / "b").iterdir()])
