"""``edgepose-calibrate RUN DATA``: refit sigma's scale on labelled frames like the deployment's."""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import List, Optional

from edgepose.cli.arg_groups import add_dataset_options, check_data_folder
from edgepose.cli.guard import guarded
from edgepose.datasets import FORMATS
from edgepose.errors import ConfigError

DESCRIPTION = """\
Refit sigma's scale on labelled frames like the ones the model will meet, and write it into
RUN/final.pt (the next export carries it into every backend).

Training fits sigma's scale on frames the model did not train on (validation blocks, the
stored views' out-of-fold answers). If the deployment's frames relate differently to the
training trajectory (farther off it, other lighting), the fraction of errors within 1 and 2
sigma moves away from nominal (53 / 98 %). Give a labelled recording like the deployment's,
in the training's world frame (another flight with motion capture or a SLAM map): the model
predicts it and one scale per output is refitted (the same maximum-likelihood estimator as
training). Only the scale changes; which frames sigma calls hard stays the model's.

Printed per output: coverage at 1 / 2 / 3 sigma with the run's scale ("before"), under a scale
fitted on the other blocks of the recording ("honest": what frames like these will see), and
on the frames it was fitted on. The previous calibration is kept in final.pt
(calibration["previous"]). Exit 0 when done, 2 for bad arguments or unusable data (file and line).

examples:
  edgepose-calibrate runs/room data/room_flight2                 # its test split
  edgepose-calibrate runs/room data/room_flight2 --split all --dry-run
  edgepose-calibrate runs/room data/mocap --format csv --split-policy sequence:run7
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgepose-calibrate", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN", type=Path, help="a finished training run folder (RUN/final.pt)")
    p.add_argument("data", metavar="DATA", type=Path, help="a labelled dataset in the training's world frame")
    p.add_argument("--split", default="test", choices=("train", "test", "all"),
                   help="which of DATA's frames to fit on (default test)")
    add_dataset_options(p, FORMATS)
    p.add_argument("--dry-run", action="store_true", help="report only; final.pt is not changed")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as edgepose-train: shared cores
    ns = build_parser().parse_args(argv)

    def body() -> int:
        if not (ns.run / "final.pt").is_file():
            raise ConfigError(f"RUN {ns.run}: no final.pt there",
                              hint="give the folder edgepose-train --out wrote (it ends with final.pt)")
        check_data_folder(ns.data)
        from .refit import refit, table, training_overlap  # lazy: torch-backed

        warning = training_overlap(ns.run, ns.data, ns.split)
        if warning:
            print(f"edgepose-calibrate: warning: {warning}", file=sys.stderr)
        report = refit(ns.run, ns.data, ns.split, ns.format, ns.split_policy, write=not ns.dry_run,
                       progress=ns.progress and sys.stderr.isatty())
        if ns.json:
            print(json.dumps(report, indent=1))
            return 0
        print(f"{report['frames']} {ns.split} frames of {ns.data}; median error {report['median_error'][0]:.3f} m, "
              f"{report['median_error'][1]:.2f} deg; honest coverage over {report['blocks']} contiguous blocks")
        print("\n".join(table(report)))
        if ns.dry_run:
            print("dry run: final.pt unchanged")
        else:
            print(f"wrote {report['written']} (previous calibration kept under calibration['previous'])")
            run = shlex.quote(str(ns.run))
            print(f"next: edgepose-export {run} --out {shlex.quote(str(ns.run) + '-bundle')} --precision fp16")
        return 0

    return guarded("edgepose-calibrate", body, on_interrupt="final.pt unchanged")


if __name__ == "__main__":
    sys.exit(main())
