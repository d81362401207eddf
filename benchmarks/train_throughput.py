"""Training throughput (images/s) of one PoseNet training step on this machine.

Each configuration runs in its own process (OpenMP reads OMP_WAIT_POLICY when torch loads):
memory format (contiguous vs channels_last), torch threads, OpenMP wait policy. A step is
what edgepose-train does: photometric jitter, forward, learned-weighting loss + uncertainty
NLL, backward, Adam. Results go to benchmarks/results/train_throughput.{md,json}.

    .venv/bin/python benchmarks/train_throughput.py                 # 128x96, batch 32
    .venv/bin/python benchmarks/train_throughput.py --steps 5 --size 64x48 --batch 8

The machine's load is recorded with every run: other processes on the same cores change
the figures (spinning OpenMP threads suffer most), so compare rows of one run only.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one(args) -> None:
    import torch

    from edgepose.train.augment import photometric_jitter
    from edgepose.train.losses import build_objective
    from edgepose.train.model import PoseNet

    torch.set_num_threads(args.threads)
    W, H = (int(v) for v in args.size.split("x"))
    model = PoseNet(input_size=(W, H))
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    obj = build_objective("learned")
    opt = torch.optim.Adam(list(model.parameters()) + list(obj.parameters()), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (args.batch, H, W, 3), dtype=torch.uint8, generator=g)
    batch = {"position": torch.randn(args.batch, 3, generator=g), "rotation": torch.nn.functional.normalize(
        torch.randn(args.batch, 4, generator=g).abs(), dim=-1)}
    times = []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        img = photometric_jitter(x, g)
        loss, _ = obj(model(img), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({"s_per_step": med, "images_per_s": args.batch / med}))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="128x96")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads-list", default="1,2")
    p.add_argument("--out", type=Path, default=HERE / "results" / "train_throughput")
    p.add_argument("--_one", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--channels-last", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._one:
        one(args)
        return 0
    rows = []
    for policy in ("PASSIVE", "ACTIVE"):
        for threads in (int(t) for t in args.threads_list.split(",")):
            for cl in (0, 1):
                env = {**os.environ, "OMP_WAIT_POLICY": policy}
                cmd = [sys.executable, __file__, "--_one", "--threads", str(threads), "--channels-last", str(cl),
                       "--size", args.size, "--batch", str(args.batch), "--steps", str(args.steps),
                       "--warmup", str(args.warmup)]
                load = os.getloadavg()[0]
                res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
                r = json.loads(res.stdout.strip().splitlines()[-1])
                r.update(omp_wait_policy=policy, threads=threads, channels_last=bool(cl), load_1min=load)
                rows.append(r)
                print(f"{policy:<8} threads {threads}  channels_last {bool(cl)!s:<5}  "
                      f"{r['images_per_s']:6.1f} img/s  (load {load:.1f})", flush=True)
    meta = {"command": "benchmarks/train_throughput.py " + " ".join(sys.argv[1:]), "size": args.size,
            "batch": args.batch, "steps": args.steps, "cpu_count": os.cpu_count(), "machine": platform.processor()
            or platform.machine(), "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [f"# Training throughput, efficientnet_lite0 PoseNet, {args.size}, batch {args.batch}", "",
             f"Command: `.venv/bin/python {meta['command']}` ({meta['when']}, {meta['cpu_count']} CPUs). "
             "Median of the timed steps; `load` is the 1-minute load average when the row started "
             "(other processes shared the cores).", "",
             "| OMP_WAIT_POLICY | threads | channels_last | images/s | load |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['omp_wait_policy']} | {r['threads']} | {r['channels_last']} | "
                     f"{r['images_per_s']:.1f} | {r['load_1min']:.1f} |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
