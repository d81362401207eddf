"""The torch backend on a real (tiny, untrained) PoseNet checkpoint in a bundle."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch backend needs torch")


@pytest.fixture(scope="module")
def torch_bundle(tmp_path_factory, bundle):
    from edgepose.bundle import file_entry, load_manifest, write_manifest
    from edgepose.train.checkpoint import save_checkpoint
    from edgepose.train.model import PoseNet

    torch.manual_seed(0)
    model = PoseNet("mobilenet_v3_small", pretrained="none", input_size=(32, 24), hidden=16,
                    position_mean=(1.0, -2.0, 0.5), position_scale=2.0).eval()
    dst = tmp_path_factory.mktemp("torchbundle") / "bundle"
    shutil.copytree(bundle[0], dst)
    save_checkpoint(dst / "model.pt", {"config": model.config, "model": model.state_dict()})
    m = load_manifest(dst)
    m["files"]["model.pt"] = file_entry(dst, "model.pt", "checkpoint", "fp32")
    write_manifest(dst, m)
    return dst, model


def test_torch_runner_returns_predict_world_in_the_runner_contract(torch_bundle):
    from edgepose.runtime import PrecisionFallbackWarning, open_runner

    path, model = torch_bundle
    x = np.random.default_rng(0).integers(0, 256, (2, 24, 32, 3), dtype=np.uint8)
    with open_runner(path, "torch", "fp32", threads=1) as r:
        assert r.name == "torch:cpu"
        out = r.infer(x)
        assert "compute" in r.last_timing
    with torch.inference_mode():
        pos, rot, sig = (t.numpy().astype(np.float64) for t in model.predict_world(torch.from_numpy(x)))
    # the model's OWN outputs keep the contract (before Runner._to_pose_batch polishes them)
    np.testing.assert_allclose(np.linalg.norm(rot, axis=1), 1.0, atol=1e-6)
    assert np.all(rot[:, 0] >= 0) and np.all(sig > 0)
    np.testing.assert_allclose(out.position, pos, atol=1e-5)
    np.testing.assert_allclose(out.rotation, rot, atol=1e-5)
    np.testing.assert_allclose(out.sigma, sig, rtol=1e-5)
    assert out.position.dtype == np.float64
    with pytest.warns(PrecisionFallbackWarning, match="fp32 checkpoint"):
        open_runner(path, "torch", "int8")


def test_bench_threads_reach_the_torch_row_as_its_own_option(torch_bundle, tmp_path):
    # the bench used to pass intra_op_threads (an ONNX Runtime option) to every backend; the
    # torch runner takes `threads`, so its rows ran with torch's default thread count
    from bench_support import write_sevenscenes

    from edgepose.runtime.bench.cli import main

    path, _ = torch_bundle
    scene = write_sevenscenes(tmp_path / "scene", n_test=4)
    rc = main([str(path), "--data", str(scene), "--backends", "torch,onnxruntime", "--precisions", "fp32",
               "--threads", "1", "--warmup-s", "0", "--iters", "2", "--quiet", "--no-plots",
               "--out", str(tmp_path / "rep")])
    assert rc == 0
    import json

    rows = {r["label"]: r for r in json.loads((tmp_path / "rep" / "report.json").read_text())["rows"]}
    assert rows["torch/fp32"]["status"] == "ok" and rows["torch/fp32"]["runner_options"] == {"threads": 1}
    assert rows["onnxruntime/fp32"]["runner_options"] == {"intra_op_threads": 1}
