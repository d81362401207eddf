"""Runtime benchmarks (ONNX Runtime on this CPU): pipeline efficiency, latest-mode latency,
a 10,000-frame soak, and the Kalman filter's effect. Writes benchmarks/results/runtime_pipeline.md.

    .venv/bin/python benchmarks/runtime_pipeline.py                    # synthetic contract bundle
    .venv/bin/python benchmarks/runtime_pipeline.py --bundle B --precision fp32   # a real bundle

1. efficiency = end-to-end frames/s of the `every` pipeline on a folder of PNG frames (read,
   decode, resize/crop into pooled buffers, infer, postprocess) / frames/s of the runner
   alone on one preprocessed batch (target >= 0.9).
2. latest: p50/p99 end-to-end latency with a source faster than inference.
3. soak: 10,000 frames per policy; resident memory growth after warm-up (target < 5 %);
   `every`: no frame lost; `latest`: results + dropped == frames read.
4. filter: median position error of the Kalman filter vs the raw per-frame estimates on a
   synthetic trajectory whose per-frame noise matches each frame's sigma.
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from edgepose.runtime.bench.runner import rss_mb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the test-data makers (tests/synthetic_bundles.py, ...)


def make_frames(folder: Path, n: int, size=(320, 240)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        img = np.stack([(xx + 3 * i) % 256, (yy + 2 * i) % 256, (xx + yy + i) % 256], -1).astype(np.uint8)
        Image.fromarray(img).save(folder / f"frame{i:05d}.png", compress_level=1)
    return folder


def raw_fps(runner, seconds: float) -> float:
    from edgepose.runtime import preprocess_batch

    batch = preprocess_batch([np.zeros((240, 320, 3), np.uint8)], runner.input_spec, out=runner.allocate_input(1))
    return infer_rate(runner, batch, seconds)


def infer_rate(runner, batch, seconds: float, warm_up: int = 20) -> float:
    """Batches per second of ``runner.infer(batch)`` alone, after ``warm_up`` calls."""
    for _ in range(warm_up):
        runner.infer(batch)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        runner.infer(batch)
        n += 1
    return n / (time.perf_counter() - t0)


def pipeline_run(runner, source, policy, sample_at=None):
    from edgepose.runtime import Pipeline

    pipe = Pipeline(runner, source, policy=policy)
    rss_warm = None
    t0 = time.perf_counter()
    for k, _ in enumerate(pipe):
        if sample_at is not None and k == sample_at:
            rss_warm = rss_mb()
    wall = time.perf_counter() - t0
    return pipe.stats, wall, rss_warm


def filter_bench(n=2000, seed=0):
    from edgepose.runtime import PoseFilter, PoseResult

    rng = np.random.default_rng(seed)
    t = np.arange(n) / 30.0
    truth = np.stack([3 * np.cos(0.3 * t), 3 * np.sin(0.3 * t), 0.5 * np.sin(0.1 * t)], 1)  # ~1 m/s walk
    sig = rng.uniform(0.1, 0.6, n)
    meas = truth + rng.standard_normal((n, 3)) * (sig / np.sqrt(3))[:, None]
    outl = rng.choice(n, n // 50, replace=False)
    meas[outl] += rng.standard_normal((len(outl), 3)) * 3.0  # 2 % gross outliers
    f = PoseFilter()
    out = []
    for i in range(n):
        r = PoseResult(index=i, capture_time=0.0, timestamp=float(t[i]), position=meas[i].copy(),
                       rotation=np.array([1.0, 0, 0, 0]), sigma_position_m=float(sig[i]), sigma_rotation_deg=1.0)
        out.append(f(r).position)
    raw_err = np.linalg.norm(meas - truth, axis=1)
    filt_err = np.linalg.norm(np.stack(out) - truth, axis=1)
    return {"n": n, "raw_median_m": float(np.median(raw_err)), "filtered_median_m": float(np.median(filt_err)),
            "raw_p90_m": float(np.percentile(raw_err, 90)), "filtered_p90_m": float(np.percentile(filt_err, 90)),
            "rejected": f.rejected_total, "outliers": len(outl)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default=None, help="a real bundle (default: a synthetic contract bundle)")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--frames", type=int, default=300, help="frames in the synthetic video folder")
    p.add_argument("--soak", type=int, default=10000, help="frames per policy in the soak run")
    p.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0 = ORT default)")
    p.add_argument("--no-spin", action="store_true", help="ORT idle threads sleep instead of spinning")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "runtime_pipeline.md"))
    args = p.parse_args(argv)

    from edgepose.runtime import ArraySource, ImageFolderSource, open_runner
    from synthetic_bundles import make_synthetic_bundle

    work = Path(tempfile.mkdtemp(prefix="edgepose-bench-runtime-"))
    bundle = args.bundle
    if bundle is None:
        bundle = work / "bundle"
        make_synthetic_bundle(bundle, size=(224, 224), precisions=("fp32",), channels=32, depth=4)
    frames = make_frames(work / "frames", args.frames)
    opts = {"intra_op_threads": args.threads} if args.threads else {}
    if args.no_spin:
        opts["allow_spinning"] = False
    load_before = os.getloadavg()
    lines = []
    with open_runner(bundle, "onnxruntime", args.precision, **opts) as r:
        name = f"{r.name} {r.precision}, input {r.input_spec.describe(1)}"
        print("runner:", name, flush=True)
        raw = raw_fps(r, 5.0)
        stats, wall, _ = pipeline_run(r, ImageFolderSource(frames), "every")
        e2e = stats.done / wall
        lat_every = stats.latency_percentiles()
        print(f"raw {raw:.1f} fps, every {e2e:.1f} fps, efficiency {e2e / raw:.3f}", flush=True)
        stats_l, wall_l, _ = pipeline_run(r, ImageFolderSource(frames), "latest")
        lat_latest = stats_l.latency_percentiles()
        src_fps = stats_l.read / wall_l
        print(f"latest: p50 {lat_latest[0]:.1f} ms p99 {lat_latest[1]:.1f} ms, dropped {stats_l.dropped}", flush=True)
        soak = {}
        decoded = [np.asarray(Image.open(f).convert("RGB")) for f in sorted(frames.iterdir())[:50]]
        for policy in ("every", "latest"):
            reps = -(-args.soak // args.frames)
            src = ImageFolderSource(frames, repeat=reps) if policy == "every" else \
                ArraySource(decoded, repeat=-(-args.soak // len(decoded)), rate=2.0 * raw, live=True)
            rss0 = rss_mb()
            from edgepose.runtime import Pipeline

            pipe = Pipeline(r, src, policy=policy, max_frames=args.soak)
            warm = None
            t0 = time.perf_counter()
            for k, _ in enumerate(pipe):
                if warm is None and k >= min(500, args.soak // 10):
                    warm = rss_mb()
            st = pipe.stats
            end = rss_mb()
            soak[policy] = {"read": st.read, "results": st.done, "dropped": st.dropped, "failed": st.failed,
                            "rss_start": rss0, "rss_warm": warm, "rss_end": end,
                            "growth": (end - warm) / warm, "wall": time.perf_counter() - t0,
                            "lat": st.latency_percentiles()}
            print(policy, soak[policy], flush=True)
    filt = filter_bench()
    print("filter", filt, flush=True)

    cmd = "python " + " ".join(shlex.quote(a) for a in [str(Path(sys.argv[0]).relative_to(REPO))
                                                         if Path(sys.argv[0]).is_absolute() else sys.argv[0]]
                                                        + (argv if argv is not None else sys.argv[1:]))
    ev, ll = soak["every"], soak["latest"]
    md = f"""# Runtime pipeline benchmark

Command: `{cmd}` (from the repository root, `.venv/bin/python`)

Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()},
ONNX Runtime CPU, options {opts or "default"}. Load average before / after the run: {load_before[0]:.1f} / {os.getloadavg()[0]:.1f}
(other jobs share these {os.cpu_count()} cores: figures taken under load are pessimistic). Runner: {name}. Bundle: {"synthetic contract graph (4 strided 3x3 convs, 32 channels, 224x224 uint8 NHWC; random weights)" if args.bundle is None else args.bundle}.
Source: a folder of {args.frames} PNG frames, 320x240 (decoded, resized-to-cover and centre-cropped per frame).

## 1. Pipeline efficiency (`every`, lossless)

| measure | value |
|---|---|
| runner alone, one preprocessed frame in a loop | {raw:.1f} frames/s |
| end-to-end `every` pipeline (read + decode + preprocess + infer + postprocess) | {e2e:.1f} frames/s |
| **efficiency** (target >= 0.9) | **{e2e / raw:.3f}** |
| end-to-end latency p50 / p99 in `every` (includes queueing: back-pressure) | {lat_every[0]:.1f} / {lat_every[1]:.1f} ms |

## 2. `latest` with a source faster than inference

Source produced {src_fps:.0f} frames/s against {raw:.0f} frames/s of inference; {stats_l.dropped} of {stats_l.read}
frames were dropped (counted), {stats_l.done} processed.

| end-to-end latency (capture -> result) | p50 | p99 |
|---|---|---|
| `latest` | {lat_latest[0]:.1f} ms | {lat_latest[1]:.1f} ms |

## 3. Soak, {args.soak} frames per policy

| policy | frames read | results | failed | dropped | lost | RSS after warm-up | RSS at end | growth (target < 5 %) |
|---|---|---|---|---|---|---|---|---|
| every (folder, back-pressure) | {ev['read']} | {ev['results']} | {ev['failed']} | {ev['dropped']} | {ev['read'] - ev['results'] - ev['dropped']} | {ev['rss_warm']:.1f} MB | {ev['rss_end']:.1f} MB | {100 * ev['growth']:+.2f} % |
| latest (camera-like source at 2x inference rate) | {ll['read']} | {ll['results']} | {ll['failed']} | {ll['dropped']} | {ll['read'] - ll['results'] - ll['dropped']} | {ll['rss_warm']:.1f} MB | {ll['rss_end']:.1f} MB | {100 * ll['growth']:+.2f} % |

`lost` = read - results - dropped: frames neither delivered nor counted as dropped (must be 0).
Soak latency p50/p99: every {ev['lat'][0]:.1f}/{ev['lat'][1]:.1f} ms, latest {ll['lat'][0]:.1f}/{ll['lat'][1]:.1f} ms.

## 4. Kalman filter vs raw, synthetic trajectory

{filt['n']} frames at 30 fps on a ~1 m/s path; each frame's noise drawn from its own sigma (0.1-0.6 m),
plus {filt['outliers']} gross outliers (3 m). Filter: `PoseFilter()` defaults (accel 2 m/s^2, gate chi2 99.9 %).

| position error | raw | filtered |
|---|---|---|
| median | {filt['raw_median_m']:.3f} m | {filt['filtered_median_m']:.3f} m |
| p90 | {filt['raw_p90_m']:.3f} m | {filt['filtered_p90_m']:.3f} m |

Frames rejected by the gate: {filt['rejected']}.

What this does not measure: TensorRT, pinned-memory copies and CUDA graphs (no GPU here; run on a Jetson
with `--backend tensorrt`), and a real trained network (pass `--bundle`).
"""
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(md)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
