"""The accuracy targets with default flags: edgepose-train on each dataset, model vs baselines.

For every ``--data`` folder this runs ``edgepose-train DATA --out OUT/<name>`` as a subprocess
(default flags plus ``--extra``), records the wall time and the load average before and after,
and writes one Markdown table: the model's median test errors beside the mean-pose and the
nearest-neighbour retrieval baselines of the same split, the model/retrieval ratio, and the
calibrated sigma's coverage at 1/2/3 sigma (nominal 53/98/100 %, chi-3 error model) and Spearman.

    python benchmarks/train_targets.py --data ../shared/data/middlebury_dino/dino --data /tmp/dino8 \\
        --data runs/demo/scene --out /tmp/targets --name train_targets

A run that already has ``metrics.json`` in its folder is read, not retrained (so the table can
be rebuilt after the runs).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load() -> str:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


def run_one(data: Path, out: Path, extra: list) -> dict:
    cmd = [sys.executable, "-m", "edgepose.train", str(data), "--out", str(out), "--no-progress", *extra]
    rec = {"command": "edgepose-train " + " ".join(shlex.quote(c) for c in cmd[3:]), "load_before": load()}
    if not (out / "metrics.json").is_file():
        t0 = time.time()
        with open(str(out) + ".log", "w") as log:
            res = subprocess.run(["nice", "-n", "10", *cmd], stdout=log, stderr=subprocess.STDOUT)
        rec.update(wall_s=time.time() - t0, returncode=res.returncode)
    rec["load_after"] = load()
    if (out / "metrics.json").is_file():
        rec["metrics"] = json.loads((out / "metrics.json").read_text())
    return rec


def pct(m: dict, what: str) -> str:
    keys = [f"test.within_{k}sigma_{what}" for k in (1, 2, 3)]
    return "-" if any(k not in m for k in keys) else "/".join(f"{100 * m[k]:.0f}" for k in keys)


def num(v, nd=3) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def row(name: str, rec: dict) -> str:
    m = rec.get("metrics") or {}
    if not m:
        return f"| {name} | failed or unfinished (exit {rec.get('returncode')}) |" + " |" * 9
    tp, tr = m["test.median_position_m"], m["test.median_rotation_deg"]
    rp, rr = m.get("baseline.retrieval.median_position_m"), m.get("baseline.retrieval.median_rotation_deg")
    ratio = "-" if rp is None else f"{tp / rp:.2f}"
    return (f"| {name} | {m['run.frames.train']}/{m['run.frames.val']}/{m['run.frames.test']} | "
            f"{num(tp)} m / {tr:.2f}° | {num(rp)} m / {num(rr, 2)}° | {m['baseline.mean_pose.median_position_m']:.3f} m / "
            f"{m['baseline.mean_pose.median_rotation_deg']:.1f}° | {ratio} | {pct(m, 'position')} | {pct(m, 'rotation')} | "
            f"{num(m.get('test.sigma_spearman_position'), 2)} / {num(m.get('test.sigma_spearman_rotation'), 2)} | "
            f"{m['run.train_seconds'] / 60:.1f} min (wall {rec.get('wall_s', float('nan')) / 60:.1f}) |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", required=True, help="dataset folder (repeat)")
    p.add_argument("--out", required=True, help="folder for the run folders")
    p.add_argument("--name", default="train_targets", help="results/<name>.md")
    p.add_argument("--extra", default="", help="extra edgepose-train flags, quoted")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    recs = {}
    for d in a.data:
        name = Path(d).resolve().name
        recs[name] = run_one(Path(d), out / name, shlex.split(a.extra))
        print(row(name, recs[name]), flush=True)
    lines = [f"# Accuracy targets with default flags (`{a.name}`)", "",
             f"- command: `python benchmarks/train_targets.py {' '.join(shlex.quote(x) for x in (argv or sys.argv[1:]))}`",
             f"- date: {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC; 2-core x86_64 CPU shared with other "
             "jobs; load average (1/5/15 min) before and after each run below", "",
             "| set | frames train/val/test | model (median pos / rot) | retrieval | mean pose | model / retrieval pos | "
             "within 1/2/3 sigma pos % | within 1/2/3 sigma rot % | Spearman pos / rot | training |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [row(n, r) for n, r in recs.items()]
    lines += ["", "Runs:"] + [f"- {n}: `{r['command']}`; load {r['load_before']} -> {r['load_after']}" for n, r in recs.items()]
    (HERE / "results" / f"{a.name}.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
