"""The typed manifest (edgepose.manifest.Manifest): one reader that validates every field by
type and range and names the file and the key; one writer; older bundles still load.

Each case is written as a JSON file on disk (what a user, an editor or a copy leaves there)
and read through Manifest.load; the oracle is the key and the value a person reading the
file would point at."""
from __future__ import annotations

import json

import pytest

from edgepose.bundle import InputSpec, file_entry, outputs_section, verify_files
from edgepose.errors import BundleError
from edgepose.manifest import MANIFEST, Manifest


def _doc(folder, dynamic=True):
    folder.mkdir(exist_ok=True)
    (folder / "model.onnx").write_bytes(b"\x08\x07graph bytes")
    spec = InputSpec.for_model("uint8", (32, 24), (1, 2, 4) if dynamic else (1, 1, 1), dynamic)
    return {"schema": "edgepose.bundle/1", "model": {"backbone": "tiny", "mean": [0.5] * 3, "std": [0.25] * 3},
            "input": spec.to_manifest(), "outputs": outputs_section(dynamic, 2 if dynamic else 1),
            "normalization": {"position_mean": [1.0, 2.0, 3.0], "position_scale": 2.0},
            "files": {"model.onnx": file_entry(folder, "model.onnx", "onnx", "fp32")}}


def _write(folder, doc):
    (folder / MANIFEST).write_text(json.dumps(doc))
    return folder


def _refused(folder, doc) -> str:
    _write(folder, doc)
    with pytest.raises(BundleError) as exc:
        Manifest.load(folder)
    text = str(exc.value)
    assert str(folder / MANIFEST) in text and "edgepose-export" in text  # the file and the fix
    return text


def test_round_trip_keeps_every_section_and_unknown_keys(tmp_path):
    doc = _doc(tmp_path / "b")
    doc["parity"] = {"frames": 4}
    doc["engine_report"] = {"future": True}  # a key a newer version wrote
    m = Manifest.load(_write(tmp_path / "b", doc))
    assert m.input_size == (32, 24) and m.input.batch_max == 4 and m.normalization.position_scale == 2.0
    assert m.extra == {"parity": {"frames": 4}, "engine_report": {"future": True}}
    again = Manifest.from_json(json.loads(json.dumps(m.to_json())))
    assert again == m


def test_an_older_bundle_with_size_copies_loads_when_they_agree(tmp_path):
    doc = _doc(tmp_path / "b")
    doc["model"].update(input_size=[32, 24], config={"backbone": "tiny", "input_size": [32, 24], "hidden": 8})
    m = Manifest.load(_write(tmp_path / "b", doc))
    assert m.input_size == (32, 24)
    assert "input_size" not in m.to_json()["model"] and "input_size" not in m.model.config  # stored once now
    doc["model"]["config"]["input_size"] = [64, 48]
    assert "model.config.input_size is [64, 48] but input.shape" in _refused(tmp_path / "b", doc)


@pytest.mark.parametrize("edit, words", [
    (lambda d: d["input"].update(shape=[-1, 24, 32, 3.0]), "input.shape is [-1, 24, 32, 3.0]"),
    (lambda d: d["input"].update(shape=[-1, 3, 24, 32]), "3 channels (NHWC)"),
    (lambda d: d["input"].update(shape=[-1, 24, 100000, 3]), "height and width in 1..8192"),
    (lambda d: d["input"].update(shape=[-5, 24, 32, 3]), "its batch -5 is not -1"),
    (lambda d: d["input"]["batch"].update(min=4, opt=2), "min 4, opt 2, max 4"),
    (lambda d: d["input"]["batch"].update(max=True), "input.batch.max is True (a JSON boolean)"),
    (lambda d: d["input"]["batch"].update(opt=1.5), "input.batch.opt is 1.5"),
    (lambda d: d["input"].update(dtype="int64"), "input.dtype is 'int64'"),
    (lambda d: d["outputs"]["rotation"].update(shape=[-1, 3]), "outputs.rotation.shape is [-1, 3]"),
    (lambda d: d["normalization"].update(position_scale=0), "normalization.position_scale is 0"),
    (lambda d: d["normalization"].update(position_mean=[1, 2]), "normalization.position_mean is [1, 2]"),
    (lambda d: d["model"].update(std=[0.2, 0.0, 0.2]), "model.std is [0.2, 0.0, 0.2]"),
    (lambda d: d["model"].pop("backbone"), "model.backbone is missing"),
    (lambda d: d.update(files={}), "files is empty"),
    (lambda d: d["files"]["model.onnx"].update(precision="bf16"), "files['model.onnx'].precision is 'bf16'"),
    (lambda d: d["files"]["model.onnx"].update(role="weights"), "files['model.onnx'].role is 'weights'"),
    (lambda d: d["files"]["model.onnx"].update(size=-1), "files['model.onnx'].size is -1"),
    (lambda d: d["files"].update({"a\x00b.onnx": d["files"]["model.onnx"]}), "control character"),
    (lambda d: d["files"].update({"x" * 300 + ".onnx": d["files"]["model.onnx"]}), "longer than file systems allow"),
    (lambda d: d["files"].update({"copy.onnx": d["files"]["model.onnx"]}), "both claim to be the fp32 ONNX graph"),
    (lambda d: d["files"].update({"e.engine": {**d["files"]["model.onnx"], "role": "engine"}}),
     "files['e.engine'].fingerprint is missing"),
    (lambda d: d.update(sigma_calibration={"scale": [1.0, -2.0]}), "sigma_calibration.scale is [1.0, -2.0]"),
    (lambda d: d.update(validation={"fp32": 3}), "validation['fp32'] is 3"),
    (lambda d: d.update(schema="edgepose.bundle/2"), "schema is 'edgepose.bundle/2'"),
])
def test_each_bad_field_is_named_with_what_was_found(tmp_path, edit, words):
    doc = _doc(tmp_path / "b")
    edit(doc)
    assert words in _refused(tmp_path / "b", doc)


def test_a_static_batch_range_that_cannot_work_is_refused(tmp_path):
    doc = _doc(tmp_path / "b", dynamic=False)
    doc["input"]["batch"] = {"min": 1, "opt": 1, "max": 8}  # the graph takes exactly 1
    assert "the graph's batch is fixed at 1" in _refused(tmp_path / "b", doc)


def test_every_problem_is_listed_at_once(tmp_path):
    doc = _doc(tmp_path / "b")
    doc["normalization"]["position_scale"] = "big"
    doc["input"]["dtype"] = "int64"
    text = _refused(tmp_path / "b", doc)
    assert "edgepose.json: normalization.position_scale is 'big'" in text and "edgepose.json: input.dtype" in text


@pytest.mark.parametrize("raw, words", [
    (b'{"schema": "edgepose.bundle/1", "model": "\xff"}', "byte 42 is b'\\xff', not UTF-8"),  # 42 = len(prefix)
    (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    (b'{"schema": "edgepose.bundle/1",\n oops}', "edgepose.json:2: not valid JSON"),
    (b"[1, 2]", "the manifest is [1, 2] (a JSON array), expected a JSON object"),
    (b"", "not valid JSON"),
])
def test_bytes_that_are_not_a_manifest_are_a_message_not_a_traceback(tmp_path, raw, words):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / MANIFEST).write_bytes(raw)
    with pytest.raises(BundleError, match="edgepose-export") as exc:
        Manifest.load(tmp_path / "b")
    assert words in str(exc.value)


def test_a_manifest_that_is_a_folder_or_huge_is_refused(tmp_path):
    (tmp_path / "b" / MANIFEST).mkdir(parents=True)
    with pytest.raises(BundleError, match="not a regular file"):
        Manifest.load(tmp_path / "b")
    (tmp_path / "c").mkdir()
    with open(tmp_path / "c" / MANIFEST, "wb") as fh:
        fh.truncate(20 << 20)
    with pytest.raises(BundleError, match="a manifest is a few kB"):
        Manifest.load(tmp_path / "c")


def test_content_must_agree_with_the_label(tmp_path):
    doc = _doc(tmp_path / "b")
    (tmp_path / "b" / "model.onnx").write_bytes(b"\x08\x07...QuantizeLinear...DequantizeLinear")
    doc["files"]["model.onnx"] = file_entry(tmp_path / "b", "model.onnx", "onnx", "fp32")
    _write(tmp_path / "b", doc)
    with pytest.raises(BundleError, match="labelled fp32 but it is a Q/DQ"):
        verify_files(tmp_path / "b")
    doc["files"]["model.onnx"]["precision"] = "fp16"
    _write(tmp_path / "b", doc)
    with pytest.raises(BundleError, match="labelled fp16 but it is a Q/DQ"):
        verify_files(tmp_path / "b")
    doc["files"]["model.onnx"]["precision"] = "int8"
    _write(tmp_path / "b", doc)
    assert verify_files(tmp_path / "b") == ["model.onnx"]
    # an int8 graph without Q/DQ is legitimate: guided INT8 may keep every layer in float
    (tmp_path / "b" / "model.onnx").write_bytes(b"\x08\x07plain graph")
    doc["files"]["model.onnx"] = file_entry(tmp_path / "b", "model.onnx", "onnx", "int8")
    _write(tmp_path / "b", doc)
    assert verify_files(tmp_path / "b") == ["model.onnx"]


def test_the_q_dq_marker_is_found_across_read_chunks(tmp_path):
    doc = _doc(tmp_path / "b")
    data = bytearray(b"\x00" * (2 << 20))
    data[(1 << 20) - 7:(1 << 20) + 7] = b"QuantizeLinear"  # split by the 1 MiB read boundary
    (tmp_path / "b" / "model.onnx").write_bytes(bytes(data))
    doc["files"]["model.onnx"] = file_entry(tmp_path / "b", "model.onnx", "onnx", "fp32")
    _write(tmp_path / "b", doc)
    with pytest.raises(BundleError, match="labelled fp32 but it is a Q/DQ"):
        verify_files(tmp_path / "b")
