"""edgepose.runtime imports and runs ONNX inference with torch made unimportable."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import importlib.abc, json, sys

    class BlockTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch.") or name == "torchvision" or name.startswith("torchvision."):
                raise ImportError(f"blocked for this test: {name}")
            return None

    sys.meta_path.insert(0, BlockTorch())
    try:
        import torch  # noqa: F401
        raise SystemExit("torch was importable: the blocker does not work")
    except ImportError:
        pass
    import numpy as np
    import edgepose.runtime as rt
    from edgepose.errors import MissingDependencyError
    bundle, frames = sys.argv[1], sys.argv[2]
    with rt.open_runner(bundle, "auto", "fp32") as r:
        out = r.infer(np.zeros((1, 24, 32, 3), np.uint8))
    with rt.PoseEstimator.from_bundle(bundle, backend="onnxruntime", precision="fp32") as est:
        results = list(est.stream(frames, policy="every"))
    from edgepose.runtime.runners.torch_runner import TorchRunner
    why = TorchRunner.available()
    try:
        rt.runners.torch_runner.require("torch", "the torch backend")
        torch_error = None
    except MissingDependencyError as exc:
        torch_error = str(exc)
    print(json.dumps({"name": r.name, "position": out.position.tolist(), "n": len(results),
                      "failed": sum(not x.ok for x in results), "why": why, "torch_error": torch_error,
                      "torch_loaded": any(m == "torch" or m.startswith("torch.") for m in sys.modules)}))
""")


def test_runtime_runs_onnx_inference_without_torch(bundle, frames):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(bundle[0]), str(frames)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["name"].startswith("onnxruntime")
    assert len(out["position"][0]) == 3
    assert out["n"] == 12 and out["failed"] == 1
    assert not out["torch_loaded"]
    assert "torch" in out["why"] and "install" in out["torch_error"]
