"""``make gpu-check``: the tests marked ``gpu`` in one go, wherever an NVIDIA GPU is available.

Without a CUDA device this exits at once (status 2) saying it "needs an NVIDIA GPU". With one,
it runs ``pytest -m gpu`` over tests/ within a time limit (default 450 s, so the whole check
stays under 8 minutes; each test gets at most a third of it, so a hang is stopped by
pytest-timeout and the summary is still written) and writes
``benchmarks/results/gpu_check_<UTC time>.md``: the command, the GPU (nvidia-smi), the Python
packages, each test's outcome, the verdict, and the figures the tests recorded (drift of the
torch CUDA rows vs the CPU row in m/deg with the model's spread and the TF32 setting, bench
latencies, copy times); beside it the full pytest log (``.log``) and the figures (``.json``).
All three also go to ``$OUT`` when that is set (the device machine's return folder).

The check passes only when pytest passed AND every test of :data:`REQUIRED` passed (CUDA really
used: torch on the GPU, our CUDA wrapper with CuPy's kernel): an all-skipped run (a CPU-only
torch, no CuPy) fails, naming what did not run (:func:`verdict`). TensorRT tests may skip (the
lent GPU machines have no TensorRT); their outcome is listed.

Made for a borrowed GPU machine where only the working tree travels: nothing is installed.
When ``edgepose`` is not importable there, the package folders are linked under a temporary
``edgepose/`` tree (the layout pyproject.toml's package-dir describes) and put on PYTHONPATH.
pytest must be importable; ``--wheels DIR`` installs it from wheels carried along
(``pip download pytest -d DIR`` on a networked machine) into a temporary folder.

    make gpu-check                                # or: python benchmarks/gpu_check.py
    python benchmarks/gpu_check.py --time-limit 300 --wheels wheels/
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: tests that must PASS for the check to pass (a skip means CUDA was not really used)
REQUIRED = (
    "tests/runtime/test_gpu_torch.py::test_torch_on_cuda_matches_the_cpu_row[fp32]",
    "tests/runtime/test_gpu_torch.py::test_torch_on_cuda_matches_the_cpu_row[fp16]",
    "tests/runtime/test_gpu_torch.py::test_bench_runs_the_torch_cuda_rows_against_the_cpu_row",
    "tests/runtime/test_gpu_cuda.py::test_pinned_copies_kernel_events_and_a_captured_graph_on_our_stream",
    "tests/runtime/test_gpu_cuda.py::test_torch_cuda_backend_is_available_on_this_gpu",
    "tests/runtime/test_gpu_camera.py::test_the_camera_resize_on_cuda_matches_its_numpy_twin[size0]",
)
OUTCOMES = ("PASSED", "FAILED", "SKIPPED", "ERROR", "XFAIL", "XPASS")
#: pyproject.toml package-dir: package -> folder
PACKAGES = {"edgepose": "edgepose", "edgepose/train": "train", "edgepose/export": "export",
            "edgepose/runtime": "runtime"}


def find_gpu() -> tuple:
    """``(description or None, why not)``: nvidia-smi first, then cuda-python; no torch import (slow)."""
    why = []
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            r = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
            gpus = [ln for ln in r.stdout.splitlines() if ln.startswith("GPU ")]
            if r.returncode == 0 and gpus:
                return "\n".join(gpus), ""
            why.append(f"nvidia-smi -L: {(r.stdout + r.stderr).strip()[:200] or 'no GPU listed'}")
        except (OSError, subprocess.SubprocessError) as exc:
            why.append(f"nvidia-smi: {exc}")
    else:
        why.append("no nvidia-smi on PATH")
    try:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        err, n = cudart.cudaGetDeviceCount()
        if int(err) == 0 and n > 0:
            return f"{n} CUDA device(s) (cuda-python)", ""
        why.append(f"cudaGetDeviceCount: {getattr(err, 'name', err)}")
    except Exception as exc:  # noqa: BLE001 - no bindings or no driver: both mean no usable GPU
        why.append(f"cuda-python: {type(exc).__name__}: {exc}")
    return None, "; ".join(why)


def python_env(tmp: Path, wheels) -> dict:
    """Environment under which ``python -m pytest`` sees edgepose and pytest."""
    env = dict(os.environ)
    paths = []
    probe = subprocess.run([sys.executable, "-c", "import edgepose.runtime, edgepose.export"], capture_output=True)
    if probe.returncode != 0:  # not installed here: link the package folders as pyproject.toml maps them
        for pkg, folder in PACKAGES.items():
            if pkg == "edgepose":
                (tmp / "edgepose").mkdir(parents=True, exist_ok=True)
                for item in (ROOT / folder).iterdir():
                    (tmp / "edgepose" / item.name).symlink_to(item)
            else:
                (tmp / pkg).symlink_to(ROOT / folder)
        paths.append(str(tmp))
    if wheels:
        target = tmp / "site"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheels),
                        "--target", str(target), "pytest"], check=True)
        paths.append(str(target))
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def versions(env: dict) -> str:
    code = ("import importlib.metadata as m\n"
            "for d in ('torch','cupy-cuda12x','cupy-cuda13x','cupy','cuda-python','cuda-bindings','onnxruntime',"
            "'onnxruntime-gpu','numpy','pytest','tensorrt'):\n"
            "    try: print(f'{d} {m.version(d)}')\n"
            "    except m.PackageNotFoundError: pass\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    return r.stdout.strip()


def pytest_command(time_limit: float, extra=()) -> list:
    """``python -m pytest -m gpu ...`` with a per-test timeout of a third of ``time_limit`` (s), so
    pytest-timeout stops a hung test and pytest still prints its summary before the outer limit."""
    per_test = max(10, int(time_limit / 3))
    return [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rA", "-p", "no:cacheprovider",
            "-o", f"timeout={per_test}", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
            str(ROOT / "tests"), *extra]


def outcomes(text: str) -> dict:
    """``{test id (relative to the repository): outcome}`` from pytest's ``-rA`` summary lines."""
    out = {}
    for line in text.splitlines():
        word, _, rest = line.partition(" ")
        if word not in OUTCOMES or not rest:
            continue
        if word == "SKIPPED":  # "SKIPPED [1] tests/x.py:12: reason" names a line, not a test
            continue
        test = rest.split(" - ")[0].strip()
        marker = "tests/"
        out[test[test.find(marker):] if marker in test else test] = word
    return out


def verdict(rc: int, text: str, required=REQUIRED) -> tuple:
    """``(ok, problems)``: ok only if pytest passed and every ``required`` test PASSED."""
    got = outcomes(text)
    problems = []
    if rc == 124:
        problems.append("pytest was stopped at the time limit")
    elif rc != 0:
        problems.append(f"pytest exited with status {rc}")
    if "PASSED" not in got.values():
        problems.append("no test passed (all skipped or none collected): nothing ran on the GPU")
    for test in required:
        if got.get(test) != "PASSED":
            problems.append(f"{test}: {got.get(test, 'skipped or not run')} (it must pass: it proves CUDA is used)")
    return not problems, problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--time-limit", type=float, default=450.0, help="seconds for the pytest run (default 450)")
    p.add_argument("--wheels", type=Path, default=None, help="folder of wheels to install pytest from")
    p.add_argument("--out", type=Path, default=None, help="results file (default benchmarks/results/gpu_check_<time>.md)")
    p.add_argument("pytest_args", nargs="*", help="extra pytest arguments (e.g. -k cuda)")
    args = p.parse_args(argv)
    gpu, why = find_gpu()
    if gpu is None:
        print(f"make gpu-check needs an NVIDIA GPU: no CUDA device found here ({why})", file=sys.stderr)
        return 2
    t0 = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = args.out or ROOT / "benchmarks" / "results" / f"gpu_check_{stamp}.md"
    with tempfile.TemporaryDirectory(prefix="edgepose-gpu-check-") as tmp:
        tmp = Path(tmp)
        env = python_env(tmp, args.wheels)
        record = tmp / "figures.jsonl"
        env["EDGEPOSE_GPU_RECORD"] = str(record)
        # run from the temporary folder: `python -m` puts the working folder first on sys.path, and the
        # repository's own edgepose/ folder (without train/export/runtime inside) would shadow the links
        cmd = pytest_command(args.time_limit, args.pytest_args)
        print(f"{gpu}\nrunning: {' '.join(cmd)} (limit {args.time_limit:.0f} s)", flush=True)
        try:
            r = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=args.time_limit)
            rc, text = r.returncode, r.stdout + r.stderr
        except subprocess.TimeoutExpired as exc:
            rc = 124
            text = ((exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or ""))
            text += f"\n(gpu-check: pytest stopped at the {args.time_limit:.0f} s limit)"
        figures = [json.loads(line) for line in record.read_text().splitlines()] if record.is_file() else []
        ok, problems = verdict(rc, text)
        smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True).stdout if shutil.which("nvidia-smi") else ""
        lines = [ln for ln in text.splitlines() if ln.startswith(("PASSED", "FAILED", "SKIPPED", "ERROR", "XFAIL"))]
        summary = next((ln for ln in reversed(text.splitlines()) if " in " in ln and ("passed" in ln or "failed" in ln
                                                                                    or "skipped" in ln)), "")
        report = "\n".join([
            f"# make gpu-check, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
            f"Command: `make gpu-check` (= `python benchmarks/gpu_check.py`; then `{' '.join(cmd[1:])}`)",
            f"pytest exit status {rc}; wall time {time.time() - t0:.0f} s; host {platform.node()}, Python "
            f"{platform.python_version()}.", "",
            "## Verdict: " + ("PASSED" if ok else "FAILED"), "", *[f"- {p}" for p in problems], "",
            "## GPU", "```", gpu, smi.strip(), "```", "",
            "## Packages", "```", versions(env), "```", "", f"## Tests: {summary}", "",
            *[f"- {ln}" for ln in lines], "", "## Figures the tests recorded", "",
            *[f"- {json.dumps(f)}" for f in figures], *([] if figures else ["(none)"]), "",
            f"## pytest output: the full log is {out.with_suffix('.log').name}; its last 4000 characters",
            "```", text[-4000:], "```", ""])
    out.parent.mkdir(parents=True, exist_ok=True)
    written = [out, out.with_suffix(".log"), out.with_suffix(".json")]
    out.write_text(report)
    written[1].write_text(text)
    written[2].write_text(json.dumps({"verdict": "passed" if ok else "failed", "problems": problems,
                                      "pytest_status": rc, "outcomes": outcomes(text), "figures": figures}, indent=1))
    if os.environ.get("OUT"):
        for f in written:
            shutil.copy(f, Path(os.environ["OUT"]) / f.name)
    print(report[-3000:])
    print(f"results: {', '.join(map(str, written))}")
    return 0 if ok else (rc or 1)


if __name__ == "__main__":
    sys.exit(main())
