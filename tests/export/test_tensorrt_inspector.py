"""The engine's own report: NVIDIA's published IEngineInspector JSON parsed, and the refusal of
an engine whose post-processing is not FP32 (issue 19).

Inputs: layer records from the TensorRT Engine Explorer examples (``tests/export/data/trex``,
Apache-2.0, source in its README). Refusals are tested on copies edited here, in memory, so the
edit is visible in the test. Counts are read off the files by hand.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from edgepose.export.tensorrt.inspector import (EnginePrecisionError, check_post_processing_fp32, datatype,
                                                format_summary, parse_engine_information, summarise)

DATA = Path(__file__).parent / "data" / "trex"
POST = ("post_decode", "post_memory", "post_position", "post_rotation", "post_sigma")


def _load(name):
    return json.loads((DATA / name).read_text())


def test_nvidia_fp16_resnet_records_parse_with_their_precisions():
    r = parse_engine_information((DATA / "resnet.fp16.engine.graph.json").read_text())
    assert r.detailed and r.bindings == ("input.1", "191") and len(r.layers) == 6
    assert [layer.precision for layer in r.layers] == ["FP16", "FP16", "FP16", "FP16", "FP16", "FP32"]
    assert r.layers[2].name == "Gemm_48" and r.layers[2].layer_type == "CaskConvolution"
    assert r.layers[2].inputs == (("onnx::Flatten_189", "FP16"),)
    s = summarise(r, POST)
    assert s["by_precision"] == {"FP16": 5, "FP32": 1} and s["by_device"] == {"GPU": 6}
    assert s["post_processing"]["layers"] == 0 and not s["post_processing"]["fp32"]


def test_nvidia_int8_qat_records_parse_as_int8_and_fp16():
    r = parse_engine_information(_load("mobilenet.qat.engine.graph.json"))
    assert [layer.precision for layer in r.layers] == ["INT8", "INT8", "FP16"] and r.bindings == ()
    assert datatype("Four wide channel vectorized row major Int8 format") == "INT8"


def _as_post(doc, renames):
    doc = copy.deepcopy(doc)
    for rec in doc["Layers"]:
        for old, new in renames.items():
            rec["Name"] = rec["Name"].replace(old, new)
    return doc


def test_a_post_processing_layer_in_fp16_refuses_the_engine_naming_it():
    # hand edit: the FC head and its reshape become the position post-processing
    doc = _as_post(_load("resnet.fp16.engine.graph.json"), {"reshape_after_Gemm_48": "/post_position/Mul"})
    r = parse_engine_information(doc)
    s = summarise(r, POST)
    # the NoOp reformat into /post_position/Mul is named after it; the NoOp itself and the final reformat follow
    assert s["post_processing"]["layers"] == 3 and not s["post_processing"]["fp32"]
    with pytest.raises(EnginePrecisionError, match=r"/post_position/Mul: output .* is FP16") as e:
        check_post_processing_fp32(r, POST, what="model.fp16.engine")
    assert "2 of its 3 post-processing layers" in str(e.value)
    assert "Reformatting CopyNode for Output Tensor 0" not in str(e.value).split("\n", 1)[1]  # FP16 -> FP32: allowed


def test_post_processing_in_fp32_passes_and_is_summarised():
    doc = _as_post(_load("resnet.fp16.engine.graph.json"), {"reshape_after_Gemm_48": "/post_position/Mul"})
    for rec in doc["Layers"][3:]:  # hand edit: the post-processing layers made FP32
        for t in rec["Inputs"] + rec["Outputs"]:
            t["Format/Datatype"] = "Row major linear FP32"
    s = check_post_processing_fp32(parse_engine_information(doc), POST)
    assert s["post_processing"] == {"layers": 3, "by_precision": {"FP32": 3}, "fp32": True, "offending": []}
    # the FC layer reads FP16 but is not post-processing
    assert "NOT" not in format_summary(s) and "post-processing: 3 layers" in format_summary(s)


def test_an_int8_post_processing_input_is_refused_and_bare_names_cannot_be_checked():
    doc = _as_post(_load("mobilenet.qat.engine.graph.json"), {"Conv_94": "/post_memory/MatMul"})
    with pytest.raises(EnginePrecisionError, match=r"input '399' is INT8"):
        check_post_processing_fp32(parse_engine_information(doc), POST)
    names_only = {"Layers": ["/post_position/Mul", "/post_position/Add"], "Bindings": ["image", "position"]}
    with pytest.raises(EnginePrecisionError, match="DETAILED"):
        check_post_processing_fp32(parse_engine_information(names_only), POST)
    with pytest.raises(Exception, match="'Layers' list"):
        parse_engine_information("[1, 2]")


def _cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "edgepose.export.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


def test_inspect_cli_prints_the_summary_and_fails_on_fp16_post_processing(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_as_post(_load("resnet.fp16.engine.graph.json"),
                                       {"reshape_after_Gemm_48": "/post_position/Mul"})))
    r = _cli("--inspect", bad)
    assert r.returncode == 1, r.stderr
    assert "layers: 6" in r.stdout and "NOT FP32" in r.stdout and "below FP32: /post_position/Mul" in r.stdout
    good = _as_post(_load("resnet.fp16.engine.graph.json"), {"reshape_after_Gemm_48": "/post_position/Mul"})
    for rec in good["Layers"][3:]:
        for t in rec["Inputs"] + rec["Outputs"]:
            t["Format/Datatype"] = "Row major linear FP32"
    (tmp_path / "good.json").write_text(json.dumps(good))
    r = _cli("--inspect", tmp_path / "good.json")
    assert r.returncode == 0 and "post-processing: 3 layers {'FP32': 3} -> FP32" in r.stdout


def test_inspect_cli_on_a_bundle_without_engines_and_on_a_wrong_path(tmp_path):
    from synthetic_bundles import make_synthetic_bundle

    make_synthetic_bundle(tmp_path / "b", precisions=("fp32",))
    r = _cli("--inspect", tmp_path / "b")
    assert r.returncode == 0 and "no TensorRT engine in this bundle" in r.stdout
    r = _cli("--inspect", tmp_path / "nothing")
    assert r.returncode == 2 and "neither an engine-information JSON file nor a bundle" in r.stderr


def test_inspect_cli_reads_the_report_stored_beside_an_engine(tmp_path):
    """A bundle as engines.py leaves it: the engine, and its report listed with role engine-report."""
    from edgepose.bundle import EngineFingerprint, engine_filename, file_entry, load_manifest, write_manifest
    from edgepose.export.tensorrt.inspector import engine_report_name
    from synthetic_bundles import make_synthetic_bundle

    b = tmp_path / "b"
    make_synthetic_bundle(b, precisions=("fp32",))
    m = load_manifest(b)
    fp = EngineFingerprint("8.5.2.2", "Xavier", "7.2", "fp32")
    rel = engine_filename(fp)
    (b / rel).write_bytes(b"not a plan: TensorRT is not here, the stored report is read")
    doc = _as_post(_load("resnet.fp16.engine.graph.json"), {"reshape_after_Gemm_48": "/post_position/Mul"})
    (b / engine_report_name(rel)).write_text(json.dumps(doc))
    m["files"][rel] = file_entry(b, rel, "engine", "fp32", fingerprint=fp.to_json(), onnx="model.onnx")
    m["files"][engine_report_name(rel)] = file_entry(b, engine_report_name(rel), "engine-report", None, engine=rel)
    write_manifest(b, m)
    assert load_manifest(b)["files"][engine_report_name(rel)]["role"] == "engine-report"  # the typed manifest takes it
    r = _cli("--inspect", b)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"{rel} (as recorded at build)" in r.stdout and "below FP32: /post_position/Mul" in r.stdout
