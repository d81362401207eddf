"""Check every CUDA runtime call of ``runtime/cuda.py`` against each cuda-python API line.

Our users meet three lines: 11.8.x (JetPack 5, CUDA 11.4), 12.x (JetPack 6) and 13.x. Their
wheels install on a CPU machine and answer CUDA error codes without a GPU, while a wrong
argument list raises ``TypeError`` first, so the signatures can be checked here. For each
line this script makes a throwaway venv under ``/tmp`` (numpy + that cuda-python), loads
``runtime/cuda.py`` and ``runtime/cuda_probe.py`` there by path, calls every method of
``CudartApi`` (:func:`edgepose.runtime.cuda_probe.probe`) and writes one table.

Run it once per change of ``runtime/cuda.py`` (needs PyPI; about a minute per line):

    python benchmarks/cuda_python_matrix.py --out benchmarks/results/cuda_python_matrix.md

CI runs the same probe against the one line the install brings (tests/runtime/test_cuda_probe.py).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: (label, pip requirement); the versions are the newest of each line on PyPI when this was written
LINES = (
    ("11.8 (JetPack 5), old layout", "cuda-python==11.8.3"),
    ("11.8 (JetPack 5)", "cuda-python==11.8.7"),
    ("12.x (JetPack 6)", "cuda-python==12.6.2.post1"),
    ("13.x", "cuda-python==13.4.4"),
)
VENVS = Path("/tmp/edgepose-cuda-python-matrix")


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def run_probe() -> dict:
    """Inside a line's venv: pick the binding as the runner does and call everything."""
    from importlib import metadata

    sys.path.insert(0, str(ROOT))  # edgepose.errors (the core package needs only the standard library here)
    cuda = _load("edgepose_runtime_cuda", ROOT / "runtime" / "cuda.py")
    probe = _load("edgepose_runtime_cuda_probe", ROOT / "runtime" / "cuda_probe.py")
    api = cuda._pick_binding()
    versions = {}
    for dist in ("cuda-python", "cuda-bindings"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return {"binding": api.binding, "versions": versions, "rows": probe.probe(api)}


def make_venv(label: str, requirement: str, log):
    """The venv's python, or the pip error text when this line does not install here."""
    venv = VENVS / requirement.replace("==", "-")
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    log(f"[{label}] pip install numpy {requirement}")
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "numpy", requirement],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None, (r.stderr.strip().splitlines() or ["pip failed"])[-1]
    return py, None


def table(results: dict) -> str:
    labels = list(results)
    methods = [r["method"] for r in next(iter(results.values()))["rows"]]
    head = "| CudartApi method | CUDA call | " + " | ".join(labels) + " |"
    lines = [head, "|" + "---|" * (len(labels) + 2)]
    for i, m in enumerate(methods):
        row = results[labels[0]]["rows"][i]
        cells = [results[k]["rows"][i]["outcome"].replace("|", "/") for k in labels]
        lines.append(f"| {m} | {row['cuda']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cuda_python_matrix.md")
    p.add_argument("--probe", action="store_true", help="(internal) run the probe in this interpreter, print JSON")
    args = p.parse_args(argv)
    if args.probe:
        print(json.dumps(run_probe()))
        return 0
    t0 = time.time()
    results = {}
    skipped = []
    for label, req in LINES:
        py, why = make_venv(label, req, print)
        if py is None:
            skipped.append(f"- {label}: {req} does not install on Python {platform.python_version()} here: {why}")
            continue
        out = subprocess.run([str(py), __file__, "--probe"], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": ""})
        if out.returncode != 0:
            print(out.stdout + out.stderr, file=sys.stderr)
            return 1
        results[f"{label}: {req}"] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"[{label}] binding {results[f'{label}: {req}']['binding']}")
    from_probe = _load("edgepose_runtime_cuda_probe", ROOT / "runtime" / "cuda_probe.py")
    verdict = []
    for k, r in results.items():
        bad = [row["method"] for row in r["rows"][:-1] if not from_probe.signature_ok(row)]
        verdict.append(f"- {k} (import `{r['binding']}`, {r['versions']}): "
                       + ("every call of CudartApi reaches CUDA" if not bad else f"WRONG SIGNATURE in {bad}"))
    text = "\n".join([
        "# cuda-python API lines vs runtime/cuda.py", "",
        f"Command: `python benchmarks/cuda_python_matrix.py --out {args.out.relative_to(ROOT) if args.out.is_absolute() and ROOT in args.out.parents else args.out}`",
        f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.platform()}, Python "
        f"{platform.python_version()}, no GPU and no NVIDIA driver. Wall time {time.time() - t0:.0f} s "
        f"(venvs under {VENVS}; pip downloads included on the first run).", "",
        "Outcome per call: `ok`, `CUDA error <name>` (13.x without a driver) or `no driver: ...` (11.8/12.x "
        "raise RuntimeError from the driver loader, after the arguments were accepted): the signature fits; "
        "`TypeError`: it does not.",
        "The last row is the call the runner made before this fix (`cudaGraphInstantiate(graph, 0)`).", "",
        table(results), "", "Verdict:", *verdict, *skipped, "",
    ])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0 if all("WRONG" not in v for v in verdict) else 1


if __name__ == "__main__":
    sys.exit(main())
