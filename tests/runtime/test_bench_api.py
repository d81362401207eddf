"""bench_bundle(BenchConfig) -> BenchResult, the library under edgepose-bench: on a REAL bundle
(ONNX Runtime) and a real 7-Scenes-layout dataset, without the CLI."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from bench_support import write_sevenscenes  # noqa: E402

from edgepose.errors import ConfigError  # noqa: E402
from edgepose.runtime.bench.api import bench_bundle  # noqa: E402
from edgepose.runtime.bench.cli import build_parser, config_from_args  # noqa: E402
from edgepose.runtime.bench.config import BenchConfig  # noqa: E402


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from synthetic_bundles import make_synthetic_bundle

    root = tmp_path_factory.mktemp("benchapi")
    make_synthetic_bundle(root / "bundle", size=(32, 24), precisions=("fp32", "int8"))
    return root / "bundle", write_sevenscenes(root / "scene")


def test_bench_bundle_writes_the_report_it_returns(inputs, tmp_path):
    bundle, scene = inputs
    lines = []
    cfg = BenchConfig(str(bundle), str(scene), str(tmp_path / "r"), backends=["onnxruntime"], precisions=["fp32"], warmup_s=0.0,
                      iters=5, plots=False, progress=False, max_frames=4, gate="max-drift-m=10")
    result = bench_bundle(cfg, log=lines.append)
    on_disk = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [r["label"] for r in result.rows] == [r["label"] for r in on_disk["rows"]] == ["onnxruntime/fp32"]
    assert on_disk["data"]["n_frames"] == 4 and on_disk["gate"]["passed"] is True
    assert result.exit_code == 0 and result.fastest["label"] == "onnxruntime/fp32"
    assert any(line.startswith("edgepose-bench: verified") for line in lines)  # progress went to log
    # the recorded command runs the same benchmark: parsed back by the CLI's own parser
    argv = on_disk["command"].split()[1:]
    assert config_from_args(build_parser().parse_args(argv), argv) == cfg


def test_a_broken_gate_is_exit_3_and_no_ok_row_is_exit_1(inputs, tmp_path):
    bundle, scene = inputs
    common = dict(warmup_s=0.0, iters=3, plots=False, progress=False, max_frames=3)
    broken = bench_bundle(BenchConfig(bundle, scene, tmp_path / "a", precisions=["int8"], backends=["qdq-reference"],
                                      gate="max-median-m=0", **common), log=lambda s: None)
    assert broken.violations and broken.exit_code == 3
    none_ok = bench_bundle(BenchConfig(bundle, scene, tmp_path / "b", precisions=["fp32"], backends=["tensorrt"],
                                       **common), log=lambda s: None)
    assert not none_ok.ok_rows and none_ok.exit_code == 1


@pytest.mark.parametrize("field, value", [("batch", 0), ("iters", 0), ("warmup_s", -1.0), ("split", "val"),
                                          ("max_frames", 0), ("gate", "max-drift-x=1")])
def test_settings_that_cannot_run_are_refused_before_anything_is_written(inputs, tmp_path, field, value):
    bundle, scene = inputs
    cfg = BenchConfig(bundle, scene, tmp_path / "r", **{field: value})
    with pytest.raises(ConfigError):
        bench_bundle(cfg, log=lambda s: None)
    assert not (tmp_path / "r").exists()


def test_one_spelling_per_concept_with_the_old_ones_kept(inputs):
    # --precision/--backend as export and run spell them; bench's --precisions/--backends still work
    from edgepose.export.cli import build_parser as export_parser
    from edgepose.runtime.cli import build_parser as run_parser

    bundle, scene = inputs
    base = [str(bundle), "--data", str(scene), "--out", "r"]
    new = config_from_args(build_parser().parse_args(base + ["--precision", "fp32,int8", "--backend", "onnxruntime"]), [])
    old = config_from_args(build_parser().parse_args(base + ["--precisions", "fp32,int8", "--backends", "onnxruntime"]),
                           [])
    assert new == old and new.precisions == ["fp32", "int8"] and new.backends == ["onnxruntime"]
    assert "--precision fp32,int8" in " ".join(new.to_argv())
    ex = export_parser()
    assert ex.parse_args(["run", "--precision", "fp16"]).precision == ex.parse_args(["run", "--precisions", "fp16"]).precision
    assert run_parser().parse_args([str(bundle), "--source", "x", "--precision", "int8"]).precision == "int8"
