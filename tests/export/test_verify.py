"""``export/verify.py``: the parity record written at export and re-run by ``--verify``.

Bundles are the runtime's synthetic ones (real ONNX graphs, real ORT); the parity record is
written by :func:`record_parity` exactly as the exporter writes it. Failures are provoked by
changing the recorded outputs (the graphs stay intact and the manifest's hashes consistent),
so only the parity comparison can catch them.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from edgepose.bundle import BundleFiles, file_entry, load_manifest, write_manifest  # noqa: E402
from edgepose.errors import BundleError  # noqa: E402
from edgepose.export.bundle_writer import PARITY_NAME  # noqa: E402
from edgepose.export.verify import TOLERANCE, record_parity, verify_bundle  # noqa: E402
from synthetic_bundles import make_synthetic_bundle  # noqa: E402
from synthetic_oracle import synthetic_forward  # noqa: E402  (tests/ is on sys.path: its conftest.py)

SIZE = (32, 24)


def bundle_with_parity(folder, precisions=("fp32", "int8")):
    params = make_synthetic_bundle(folder, size=SIZE, precisions=precisions, channels=4)
    m = load_manifest(folder)
    images = np.random.default_rng(0).integers(0, 256, (3, SIZE[1], SIZE[0], 3), dtype=np.uint8)
    section = record_parity(folder, images, BundleFiles.of(m).by_precision("onnx"), "test frames")
    m["files"][PARITY_NAME] = file_entry(folder, PARITY_NAME, "parity", None)
    m["parity"] = section
    write_manifest(folder, m)
    return params, images, section


def rewrite_parity(folder, change):
    with np.load(folder / PARITY_NAME) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez_compressed(folder / PARITY_NAME, **arrays)
    m = load_manifest(folder)
    m["files"][PARITY_NAME] = file_entry(folder, PARITY_NAME, "parity", None)  # hashes stay consistent
    write_manifest(folder, m)


def test_record_holds_the_frames_and_each_graph_s_outputs(tmp_path):
    params, images, section = bundle_with_parity(tmp_path / "b")
    assert section == {"file": PARITY_NAME, "frames": 3, "source": "test frames",
                       "onnxruntime_optimization": "disable", "precisions": ["fp32", "int8"]}
    with np.load(tmp_path / "b" / PARITY_NAME) as z:
        assert np.array_equal(z["images"], images)
        pos, rot, _ = synthetic_forward(params, images)  # the network's own numbers
        np.testing.assert_allclose(z["fp32.position"], pos, atol=1e-4)
        np.testing.assert_allclose(z["fp32.rotation"], rot, atol=1e-5)
        assert z["int8.position"].shape == (3, 3)


def test_verify_passes_on_an_intact_bundle_and_reports_each_precision(tmp_path):
    bundle_with_parity(tmp_path / "b")
    lines = []
    report = verify_bundle(tmp_path / "b", log=lines.append)
    assert set(report["parity"]) == {"fp32", "int8"} and all(r["ok"] for r in report["parity"].values())
    # the position bound is a fraction of the scene's scale: the same record judged for a scene whose
    # manifest says it is twice as large gets twice the bound (the fraction itself is verify's choice)
    bound = report["parity"]["fp32"]["bound_m"]
    m = load_manifest(tmp_path / "b")
    m["normalization"]["position_scale"] *= 2
    write_manifest(tmp_path / "b", m)
    assert verify_bundle(tmp_path / "b", log=lambda s: None)["parity"]["fp32"]["bound_m"] == pytest.approx(2 * bound)
    assert bound > 0
    assert report["torch"] is None  # no checkpoint in a synthetic bundle
    assert any(line.startswith("parity fp32") for line in lines)


def test_verify_fails_when_a_graph_no_longer_gives_the_recorded_outputs(tmp_path):
    bundle_with_parity(tmp_path / "b")
    bound = TOLERANCE["int8"][0] * load_manifest(tmp_path / "b")["normalization"]["position_scale"]

    def shift_int8(a):
        a["int8.position"] = a["int8.position"] + np.array([3 * bound, 0.0, 0.0])

    rewrite_parity(tmp_path / "b", shift_int8)
    with pytest.raises(BundleError, match="model.int8.onnx: outputs moved") as e:
        verify_bundle(tmp_path / "b", log=lambda s: None)
    assert "\n    model.onnx:" not in str(e.value)  # the fp32 graph still gives its record


def test_a_shift_within_the_tolerance_passes(tmp_path):
    bundle_with_parity(tmp_path / "b")
    bound = TOLERANCE["int8"][0] * load_manifest(tmp_path / "b")["normalization"]["position_scale"]
    rewrite_parity(tmp_path / "b", lambda a: a.__setitem__("int8.position", a["int8.position"] + 0.25 * bound))
    assert verify_bundle(tmp_path / "b", log=lambda s: None)["parity"]["int8"]["ok"]


def test_without_parity_record_only_hashes_are_checked(tmp_path):
    make_synthetic_bundle(tmp_path / "b", size=SIZE, precisions=("fp32",), channels=4)
    lines = []
    report = verify_bundle(tmp_path / "b", log=lines.append)
    assert report["parity"] == {} and any("hashes only" in line for line in lines)


def test_an_unreadable_parity_record_says_re_export(tmp_path):
    bundle_with_parity(tmp_path / "b")
    (tmp_path / "b" / PARITY_NAME).write_bytes(b"not an npz")
    m = load_manifest(tmp_path / "b")
    m["files"][PARITY_NAME] = file_entry(tmp_path / "b", PARITY_NAME, "parity", None)
    write_manifest(tmp_path / "b", m)
    with pytest.raises(BundleError, match="cannot read") as e:
        verify_bundle(tmp_path / "b", log=lambda s: None)
    assert "re-export" in str(e.value)
