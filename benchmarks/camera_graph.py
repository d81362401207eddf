"""Camera-resolution graphs (issue 21): host cost, pipeline overhead and pose parity.

    .venv/bin/python benchmarks/camera_graph.py --bundle BUNDLE \
        [--scene 640x480=DATA ...] [--out benchmarks/results/camera_graph.md]
    python benchmarks/camera_graph.py --bundle BUNDLE --backend tensorrt   # on a Jetson / GPU

BUNDLE is an exported bundle (it gets camera graphs for every size measured, in a copy).
Each part is measured before (today's host path: the preprocessing rule on the CPU, then the
network-size graph) and after (the camera graph: the host only copies the frame), in one run:

1. host ms per raw frame outside the runner (640x480, 1280x720, 1920x1080), and the runner's
   own ms for each path;
2. the streaming pipeline on raw 1920x1080 frames held in memory: `every` frames/s over the
   runner alone on the same path (the stream's rate, from its first result to its last; the
   start-up before the first result is reported apart), and `latest` p50 latency over the
   runner's frame time; repeated back to back (--repeats), median and range;
3. with --scene SIZE=DATA (a dataset rendered at that size): median drift of the camera
   graph's poses from the host path's, over the host path's median error against the ground
   truth, per precision (target: <= 2 % for FP32).
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIZES = ((640, 480), (1280, 720), (1920, 1080))


def frames_of(size, n, seed=0):
    """Raw camera-like frames: smooth shapes plus sensor noise, uint8 (h, w, 3)."""
    from PIL import Image

    w, h = size
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        coarse = rng.uniform(0, 255, (h // 40 + 2, w // 40 + 2, 3)).astype(np.uint8)
        img = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), np.int16)
        out.append(np.clip(img + rng.integers(-4, 5, img.shape), 0, 255).astype(np.uint8))
    return out


def add_cameras(bundle: Path, sizes, work: Path, engines: bool = False) -> Path:
    """A copy of ``bundle`` with camera graphs for ``sizes`` (and their TensorRT engines when
    ``engines``: the export builds them on this device)."""
    dst = work / "bundle"
    shutil.copytree(bundle, dst)
    args = [a for s in sizes for a in ("--camera-size", f"{s[0]}x{s[1]}")]
    subprocess.run([sys.executable, "-m", "edgepose.export.cli", str(dst), "--engine", "yes" if engines else "no",
                    *args], check=True, capture_output=True, text=True)
    return dst


def runner_options(backend: str, threads: int = 0, spin: bool = False) -> dict:
    """``open_runner`` options: ``threads`` where the backend takes them; ONNX Runtime's idle
    threads sleep unless ``spin`` (they would take the core the pipeline's threads need)."""
    from edgepose.runtime.runners import runner_class

    opts, _ = runner_class(backend).options_for(threads=threads)
    if backend == "onnxruntime":
        opts["allow_spinning"] = spin
    return opts


def host_cost(bundle: Path, precision: str, reps: int = 30, backend: str = "onnxruntime"):
    """Rows ``(size, host ms before, host ms after, runner ms before, runner ms after)``."""
    from edgepose.runtime import PoseEstimator
    from edgepose.runtime.spec import write_frame

    rows = []
    with PoseEstimator.from_bundle(bundle, backend, precision, strict=True) as est:
        net = est.runner
        buf_net = net.allocate_input(1)
        scratch = np.empty(buf_net.shape[1:], np.uint8)
        for size in SIZES:
            frames = frames_of(size, 4)
            route = est.routes.route(frames[0])
            assert route.camera, f"no camera graph for {size}"
            buf_cam = route.runner.allocate_input(1)
            t_host, t_copy, r_net, r_cam = [], [], [], []
            for i in range(reps):
                f = frames[i % len(frames)]
                t0 = time.perf_counter()
                write_frame(f, net.input_spec, buf_net[0], scratch)
                t1 = time.perf_counter()
                write_frame(f, route.spec, buf_cam[0], scratch)
                t2 = time.perf_counter()
                net.infer(buf_net)
                t3 = time.perf_counter()
                route.runner.infer(buf_cam)
                t4 = time.perf_counter()
                t_host.append(t1 - t0), t_copy.append(t2 - t1), r_net.append(t3 - t2), r_cam.append(t4 - t3)
            med = lambda v: float(np.median(v[3:]) * 1e3)  # noqa: E731  (first frames warm up)
            rows.append((size, med(t_host), med(t_copy), med(r_net), med(r_cam)))
    return rows


def runner_fps(runner, frame, seconds=3.0):
    from edgepose.runtime import preprocess_batch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from runtime_pipeline import infer_rate

    return infer_rate(runner, preprocess_batch([frame], runner.input_spec, out=runner.allocate_input(1)), seconds, 5)


def _steady(pipe):
    """``(results/s from the first result to the last, ms to the first result, latencies ms)``.
    The start-up (threads, the camera graph's session opened at the first frame of its size,
    the first inference) is a one-time cost, reported apart from the stream's rate."""
    t0 = time.perf_counter()
    t_first = t_last = None
    lat = []
    for res in pipe:
        t_last = time.perf_counter()
        t_first = t_first or t_last
        if res.ok:
            lat.append(res.timings_ms["latency"])
    n = len(lat)
    return (n - 1) / (t_last - t_first), (t_first - t0) * 1e3, lat


def pipeline_rows(bundle: Path, precision: str, n: int = 240, spin: bool = False, threads: int = 0,
                  repeats: int = 3, backend: str = "onnxruntime"):
    """``{path: [(every fps, runner fps, latest p50 ms, start-up ms), ...]}``, one tuple per
    repeat, on raw 1920x1080 frames. Each repeat measures the runner alone, then `every`, then
    `latest`, back to back, so that a change of load hits both sides of a ratio. "Runner alone"
    is the runner on an already prepared input of that path (for the host path the network-size
    graph, so its efficiency shows what host preprocessing costs)."""
    from edgepose.runtime import ArraySource, Pipeline, open_runner
    from edgepose.runtime.camera import InputRoutes

    frames = frames_of((1920, 1080), 8, seed=1)
    out = {}
    for path, use_camera in (("host preprocessing", False), ("camera graph", True)):
        with open_runner(bundle, backend, precision, strict=True, **runner_options(backend, threads, spin)) as r:
            for _ in range(repeats):
                routes = InputRoutes(r, 0, enabled=use_camera)
                alone = runner_fps(routes.route(frames[0]).runner, frames[0])
                routes.close()
                src = ArraySource([frames[i % len(frames)] for i in range(n)])
                every_fps, start_ms, _ = _steady(Pipeline(r, src, policy="every", camera_graphs=use_camera))
                # a live camera twice as fast as this path's pipeline can go: `latest` must drop
                live = ArraySource([frames[i % len(frames)] for i in range(n)], rate=2 * every_fps, live=True)
                _, _, lat = _steady(Pipeline(r, live, policy="latest", camera_graphs=use_camera))
                out.setdefault(path, []).append((every_fps, alone, float(np.median(lat[3:] or lat)), start_ms))
    return out


def parity_rows(bundle: Path, scenes, precisions, backend: str = "onnxruntime"):
    """Rows ``(size, precision, frames, host median error m, drift median m, drift p95 m, ratio)``."""
    from edgepose.datasets import load_dataset
    from edgepose.preprocess import load_image
    from edgepose.runtime import PoseEstimator
    from edgepose.runtime.camera import InputRoutes

    rows = []
    for size, root in scenes:
        ds = load_dataset(root)
        recs = list(ds.frames)
        images = [load_image(r.image) for r in recs]
        truth = np.array([r.position for r in recs], np.float64)
        for prec in precisions:
            with PoseEstimator.from_bundle(bundle, backend, prec, strict=True) as cam, \
                    PoseEstimator.from_bundle(bundle, backend, prec, strict=True) as host:
                host._routes = InputRoutes(host.runner, 0, enabled=False)
                a = np.array([cam.predict(im).position for im in images])
                b = np.array([host.predict(im).position for im in images])
                assert cam.routes.opened, f"the camera graph for {size} was not used"
            err = np.linalg.norm(b - truth, axis=1)
            drift = np.linalg.norm(a - b, axis=1)
            rows.append((size, prec, len(images), float(np.median(err)), float(np.median(drift)),
                         float(np.percentile(drift, 95)), float(np.median(drift) / np.median(err))))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, required=True, help="an exported bundle (uint8 input)")
    p.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "tensorrt"),
                   help="onnxruntime (default; CPU here) or tensorrt (on a Jetson or GPU: the copy of the "
                        "bundle gets engines for its camera graphs)")
    p.add_argument("--precision", default="fp32", help="precision for parts 1-2 (default fp32)")
    p.add_argument("--parity-precisions", default="fp32,fp16,int8")
    p.add_argument("--scene", action="append", default=[], metavar="WxH=DATA",
                   help="a dataset rendered at WxH for the parity part (repeatable)")
    p.add_argument("--frames", type=int, default=240, help="frames per pipeline run (default 240: at 120 one repeat in five could fall 5 %% off)")
    p.add_argument("--spin", action="store_true", help="part 2: let ONNX Runtime's idle threads spin (its default)")
    p.add_argument("--threads", type=int, default=0, help="part 2: ONNX Runtime intra-op threads (0: its default)")
    p.add_argument("--repeats", type=int, default=3, help="part 2: back-to-back repeats per path (default 3)")
    p.add_argument("--out", type=Path, default=None, help="append the results to this Markdown file")
    args = p.parse_args(argv)
    scenes = []
    for s in args.scene:
        size, root = s.split("=", 1)
        w, h = (int(v) for v in size.lower().split("x"))
        scenes.append(((w, h), Path(root)))
    sizes = list(dict.fromkeys(list(SIZES) + [s for s, _ in scenes]))
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        bundle = add_cameras(args.bundle, sizes, Path(tmp), engines=args.backend == "tensorrt")
        cost = host_cost(bundle, args.precision, backend=args.backend)
        pipe = pipeline_rows(bundle, args.precision, args.frames, args.spin, args.threads, args.repeats, args.backend)
        have = [q for q in args.parity_precisions.split(",") if (bundle / ("model.onnx" if q == "fp32" else f"model.{q}.onnx")).is_file()]
        parity = parity_rows(bundle, scenes, have, args.backend) if scenes else []
    load1 = os.getloadavg()[0]
    lines = [f"\n## Run of {time.strftime('%Y-%m-%dT%H:%M')}\n",
             f"{platform.machine()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}; "
             f"{args.backend}; load average {load0:.1f} at the start, {load1:.1f} at the end. Command:\n",
             "    .venv/bin/python benchmarks/camera_graph.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])) + "\n",
             f"### 1. Host time per raw frame outside the runner ({args.precision}, median of 27 frames)\n",
             "| frame | host ms before (rule on the CPU) | host ms after (copy) | ratio | runner ms before | runner ms after |",
             "|---|---|---|---|---|---|"]
    for (w, h), hb, ha, rb, ra in cost:
        lines.append(f"| {w}x{h} | {hb:.2f} | {ha:.3f} | {ha / hb:.3f} | {rb:.2f} | {ra:.2f} |")
    lines += ["", f"### 2. Streaming pipeline on raw 1920x1080 frames in memory (ORT threads {args.threads or 'default'}, "
              f"spinning {'on' if args.spin else 'off'}; {args.repeats} repeats, median [min-max])\n",
              "`every` frames/s run from the first result to the last; the start-up before the first result "
              "(threads, the camera graph's session opened at the first frame of its size, the first "
              "inference) is its own column.\n",
              "| path | `every` frames/s | runner alone frames/s | efficiency | start-up ms | `latest` p50 ms | "
              "runner frame ms | p50 / frame time |",
              "|---|---|---|---|---|---|---|---|"]
    for path, reps in pipe.items():
        fps, alone, p50, start = (np.array(v) for v in zip(*reps))
        eff, ratio = fps / alone, p50 * alone / 1e3
        span = lambda v, f: f"{f.format(np.median(v))} [{f.format(v.min())}-{f.format(v.max())}]"  # noqa: E731
        lines.append(f"| {path} | {np.median(fps):.1f} | {np.median(alone):.1f} | {span(eff, '{:.3f}')} | "
                     f"{np.median(start):.0f} | {np.median(p50):.2f} | {1e3 / np.median(alone):.2f} | {span(ratio, '{:.2f}')} |")
    if parity:
        lines += ["", "### 3. Poses: camera graph vs the host path on rendered scenes\n",
                  "| frames rendered at | precision | frames | host path median error m | drift median m | drift p95 m | drift / error |",
                  "|---|---|---|---|---|---|---|"]
        for (w, h), prec, n, err, dm, d95, ratio in parity:
            lines.append(f"| {w}x{h} | {prec} | {n} | {err:.4f} | {dm:.5f} | {d95:.5f} | {100 * ratio:.2f} % |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        if not args.out.exists():
            args.out.write_text("# Camera-resolution graphs: host cost, pipeline, parity (issue 21)\n\n"
                                "Written by `benchmarks/camera_graph.py` (its docstring says what each part is).\n")
        with open(args.out, "a") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
