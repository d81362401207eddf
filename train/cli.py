"""``edgepose-train``: train a PoseNet with the two-stage recipe into a run folder."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional

from edgepose.argtypes import nonnegative_float, nonnegative_int, number, positive_float, positive_int, size
from edgepose.cli.arg_groups import add_dataset_options, add_threads, check_data_folder
from edgepose.cli.guard import guarded
from edgepose.datasets import FORMATS
from edgepose.errors import ConfigError
from edgepose.outputs import check_outputs

from .signals import Interrupted

DESCRIPTION = """\
Train a camera-pose regressor (PoseNet, Kendall & Cipolla CVPR 2017) on DATA and write RUN.

Stage 1 trains from ImageNet weights with learned homoscedastic weighting of the position and
rotation losses (or --loss beta). Stage 2 fine-tunes stage 1's best model with the geometric
reprojection loss on scene points visible in each frame (observed points, depth, or points
drawn in the frustum). Every 10th training frame is held out to choose each stage's best
epoch and to calibrate sigma; the test split is only used for the final report, where the
model stands beside two baselines: the mean training pose, and nearest-neighbour retrieval
(the pose of the most similar training image by ImageNet features). Images are preprocessed
once into memory with the runtime's own resize-and-centre-crop rule.

The budget is counted in optimiser steps: by default 40 epochs' worth, but at least 600 and
at most 6000 steps (a 30-image set gets 600 steps, a 3,000-image set ~3,400), 10 % of them
for stage 2. --steps N sets the total; --stage1-epochs/--stage2-epochs set a stage's epochs.
"""

EPILOG = """\
examples:
  edgepose-synth data/synth --frames 400 --size 160x120 --seed 0
  edgepose-train data/synth --out runs/synth
  edgepose-train data/dino --out runs/dino --steps 1200
  edgepose-train data/dino --out runs/dino --stage1-epochs 64 --stage2-epochs 0 --loss beta
  edgepose-train --out runs/synth --resume              (continue after a crash or Ctrl-C)
  edgepose-train --out runs/synth --resume --qat-epochs 3   (add INT8 QAT to a finished run)
  torchrun --nproc_per_node 2 -m edgepose.train data/synth --out runs/ddp   (DDP, rank 0 writes)

RUN holds final.pt (what edgepose-export reads), metrics.json (test.*, stage1.*,
baseline.mean_pose.*, baseline.retrieval.* median/mean errors; test.within_{1,2,3}sigma_*
coverage and test.sigma_spearman_* of the calibrated sigma; calibration.*), metrics.csv (one
row per epoch) and checkpoints/ (stage1/stage2 last and best, written every
--checkpoint-minutes and at the end of each stage). SIGINT/SIGTERM save a checkpoint first;
--resume continues at that step, with the options of the interrupted run unless you pass new ones.
"""


def build_parser() -> argparse.ArgumentParser:
    # lazy: torch loads only when the parser is built, so importing this entry point stays torch-free
    from .recipe import TrainConfig
    from .rotation_head import ROTATION_HEADS

    d = TrainConfig(data="", out="")
    p = argparse.ArgumentParser(prog="edgepose-train", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                argument_default=argparse.SUPPRESS)
    p.add_argument("data", nargs="?", metavar="DATA",
                   help="dataset folder (7-Scenes, Cambridge, COLMAP, CSV, Middlebury, ...: see edgepose-inspect)")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder to create (or to --resume)")
    g = p.add_argument_group("data")
    add_dataset_options(g, FORMATS, "the format's own split, else every:5", default=argparse.SUPPRESS)
    g.add_argument("--allow-outside-images", action="store_true",
                   help="accept image paths that leave DATA (../x.png, absolute paths); refused by default")
    g.add_argument("--input-size", type=size(multiple_of=8, minimum=16, what="--input-size"), metavar="WxH",
                   help=f"network resolution (default {d.input_size[0]}x{d.input_size[1]})")
    g.add_argument("--val-every", type=nonnegative_int, metavar="K", help=f"hold out every K-th training frame for validation; 0: none (default {d.val_every})")
    g.add_argument("--max-points", type=positive_int, help=f"scene points per frame for the reprojection loss (default {d.max_points})")
    g.add_argument("--jitter", type=nonnegative_float, help=f"brightness/contrast/saturation jitter strength, 0 disables (default {d.jitter})")
    g = p.add_argument_group("model")
    g.add_argument("--backbone", help=f"backbone name (default {d.backbone})")
    g.add_argument("--pretrained", choices=("imagenet", "none"), help=f"backbone weights (default {d.pretrained})")
    g.add_argument("--hidden", type=positive_int, help=f"width of the shared FC layer (default {d.hidden})")
    g.add_argument("--dropout", type=number(0, 1, high_open=True), help=f"dropout after the FC layer (default {d.dropout})")
    g.add_argument("--rotation-head", choices=tuple(ROTATION_HEADS),
                   help="what the rotation head outputs; each becomes a unit quaternion (w >= 0) inside the model "
                        "and its ONNX graph: 6d (two matrix columns, Gram-Schmidt: no seam anywhere; 20 %% lower median "
                        "errors than quaternion on dino over 2 seeds), quaternion (4 numbers, normalised), log (log "
                        "quaternion, 3 numbers) "
                        f"(default {d.rotation_head})")
    g.add_argument("--memory-size", type=nonnegative_int, metavar="N",
                   help="training views the final model keeps for retrieval: its answer is blended with the "
                        "regressor's, with weights chosen on the validation frames; more views are subsampled "
                        f"evenly; 0: regressor only (default {d.memory_size})")
    g.add_argument("--fold-models", type=nonnegative_int, metavar="K",
                   help="after training, train K fold models (each on the other folds' views, stage 1's recipe for "
                        "--fold-fraction of its steps) whose errors on the views they never saw choose the memory's "
                        "blend and k, fit the difficulty head and sigma's weights; 0: the ridge stand-in on the final "
                        "model's features instead, no extra training. Off by default: measured worse than the stand-in "
                        f"on 3 of 4 sets (benchmarks/results/sigma_folds.md) (default {d.fold_models})")
    g.add_argument("--fold-fraction", type=number(0, 1, low_open=True), metavar="F",
                   help=f"each fold model's share of stage 1's steps (default {d.fold_fraction:.3g})")
    g = p.add_argument_group("recipe")
    g.add_argument("--steps", type=positive_int, metavar="N", help="optimiser steps of both stages (default: 40 epochs' worth, "
                   f"within {d.min_steps}..{d.max_steps}); epochs are derived from it")
    g.add_argument("--min-steps", type=positive_int, metavar="N", help=f"least steps of a default budget (default {d.min_steps})")
    g.add_argument("--max-steps", type=positive_int, metavar="N", help=f"most steps of a default budget (default {d.max_steps})")
    g.add_argument("--stage2-fraction", type=number(0, 1), metavar="F", help=f"share of the steps for stage 2 (default {d.stage2_fraction:g})")
    g.add_argument("--stage1-epochs", type=nonnegative_int, metavar="N", help="stage 1 epochs (default: from the step budget)")
    g.add_argument("--stage2-epochs", type=nonnegative_int, metavar="M", help="stage 2 (reprojection) epochs; 0 stops after stage 1 (default: from the step budget)")
    g.add_argument("--loss", choices=("learned", "beta"), help=f"stage 1 loss (default {d.loss})")
    g.add_argument("--beta", type=positive_float, help=f"beta of --loss beta (default {d.beta:g})")
    g.add_argument("--loss-norm", choices=("l1", "l2"), help=f"stage 1 position/rotation norm (default {d.loss_norm})")
    g.add_argument("--uncertainty", choices=("nll", "heteroscedastic"),
                   help="nll: per-frame sigma heads fit on detached errors (default); heteroscedastic: "
                        "they replace sp/sq in stage 1 (Kendall & Gal 2017)")
    g.add_argument("--reproj-clip", type=positive_float, help=f"per-point reprojection residual cap, normalised image units (default {d.reproj_clip:g})")
    g.add_argument("--use-K", action="store_true", help="reprojection in pixels with each frame's intrinsics (default: K = identity, as the paper's re-implementations)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=positive_int, help=f"frames per batch per process (default {d.batch_size})")
    g.add_argument("--lr", type=positive_float, help=f"stage 1 Adam learning rate (default {d.lr:g})")
    g.add_argument("--stage2-lr", type=positive_float, help=f"stage 2 Adam learning rate (default {d.stage2_lr:g})")
    g.add_argument("--weighting-lr", type=positive_float, help=f"learning rate of the learned sp/sq (default {d.weighting_lr:g})")
    g.add_argument("--weight-decay", type=nonnegative_float, help=f"Adam weight decay of the network (default {d.weight_decay:g})")
    g.add_argument("--warmup-steps", type=nonnegative_int, help=f"linear warm-up steps per stage (default {d.warmup_steps})")
    g = p.add_argument_group("execution")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), help="auto: cuda when available (default)")
    add_threads(g, "CPU threads per process (default: cores / local processes)", default=argparse.SUPPRESS)
    g.add_argument("--workers", type=nonnegative_int, metavar="N",
                   help="DataLoader worker processes; 0 loads in the main process (default: 0 on CPU, 2 on CUDA)")
    g.add_argument("--channels-last", choices=("auto", "on", "off"),
                   help="channels_last memory format (auto = on: measured faster, see benchmarks/train_throughput.md)")
    g.add_argument("--seed", type=nonnegative_int, metavar="S", help=f"seed of initialisation, order and augmentation (default {d.seed})")
    g.add_argument("--deterministic", action="store_true", help="deterministic kernels: a resumed run ends with the same weights")
    g.add_argument("--resume", action="store_true", help="continue RUN from its latest checkpoint")
    g.add_argument("--checkpoint-minutes", type=nonnegative_float, metavar="M",
                   help=f"wall time between resume checkpoints, besides the end of each stage and SIGINT/SIGTERM; "
                        f"0: after every epoch (default {d.checkpoint_minutes:g})")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    g = p.add_argument_group("stage 3: quantization-aware fine-tuning (QAT) for INT8")
    g.add_argument("--qat-epochs", type=nonnegative_int, metavar="N",
                   help="after stages 1-2, N epochs with fake INT8 quantization as TensorRT runs it; "
                        "edgepose-export --precision int8 then uses the learned ranges. On a finished "
                        "run: --resume --qat-epochs N (default 0: no QAT; a --resume keeps the run's own)")
    g.add_argument("--qat-lr", type=positive_float, metavar="LR", help=f"QAT learning rate (default {d.qat_lr:g}, 1%% of stage 1's)")
    return p


def make_config(ns: argparse.Namespace):
    """A :class:`TrainConfig` from the parsed options; with ``--resume`` the options not given
    on the command line come from the run's latest checkpoint."""
    # lazy: torch-backed modules, loaded by the command that needs them (torch-free entry point)
    from .checkpoint import check_run_folder, latest_resume_point
    from .recipe import TrainConfig

    given: Dict = dict(vars(ns))
    base: Dict = {}
    if given.get("resume"):
        ckpt = latest_resume_point(given["out"])
        check_run_folder(given["out"], ckpt)  # before saying "starting a new run" in another tool's folder
        if ckpt is None:
            print(f"edgepose-train: {given['out']} holds no checkpoint yet: starting a new run", file=sys.stderr)
        else:
            base = TrainConfig.known_fields(ckpt.get("recipe"))
            for key in ("backbone", "input_size", "hidden", "pretrained", "rotation_head"):
                if key in given and key in base and _norm(given[key]) != _norm(base[key]):
                    raise ConfigError(f"--resume: {key} was {base[key]!r} in {ckpt['path']}, now {given[key]!r}",
                                      hint="resume with the run's own model options, or train into another --out")
    if Path(given["out"]).exists() and not Path(given["out"]).is_dir():
        raise ConfigError(f"--out {given['out']} is a file; expected a run folder (created if missing)",
                          hint=f"pick another --out, e.g. --out {Path(given['out']).with_suffix('')}-run")
    merged = {**base, **given, "out": given["out"]}
    if not merged.get("data"):
        raise ConfigError("no DATA folder given", hint="edgepose-train DATA --out RUN  (see --help)")
    check_data_folder(merged["data"])
    check_outputs({"--out": given["out"]}, {"DATA": merged["data"]})  # a run folder never inside its dataset
    merged["data"] = str(Path(merged["data"]).resolve())  # --resume may run from another folder
    merged["input_size"] = tuple(merged.get("input_size", TrainConfig.input_size))
    return TrainConfig(**merged)


def _norm(v):
    return list(v) if isinstance(v, (list, tuple)) else v


def main(argv: Optional[List[str]] = None) -> int:
    # OpenMP threads that spin while waiting make torch 5x slower when the cores are shared
    # (measured at load ~10 on 2 cores, batch 4 at 64x48, 2 threads: 2.39 s/step ACTIVE vs
    # 0.52 PASSIVE); on a nearly idle machine PASSIVE costs ~12% (39.3 vs 34.5 img/s,
    # benchmarks/results/train_throughput.md). Set before torch loads (build_parser loads it),
    # only if the user has not.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    ns = parser.parse_args(argv)

    def body() -> int:
        from .trainer import fit  # lazy: torch-backed, loaded after OMP_WAIT_POLICY is set above

        cfg = make_config(ns)
        try:
            fit(cfg)  # stages 1-2, then stage 3 (QAT) when cfg.qat_epochs > 0
            if cfg.qat_epochs:
                print(f"next: edgepose-export {cfg.out} --out {cfg.out}-bundle --precision fp32,fp16,int8   "
                      "(INT8 from the QAT ranges)")
        except Interrupted as exc:
            print(f"\nedgepose-train: {exc}\n  continue with: edgepose-train {cfg.data} --out {cfg.out} --resume",
                  file=sys.stderr)
            return 128 + exc.signum
        return 0

    # errors, a second Ctrl-C and a full disk: a message, no traceback (checkpoints are atomic)
    return guarded("edgepose-train", body, on_interrupt="aborted (no checkpoint saved for the current step)")


if __name__ == "__main__":
    sys.exit(main())
