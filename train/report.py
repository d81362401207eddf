"""What ``edgepose-train`` prints: the plan at the start, one screen of results at the end."""
from __future__ import annotations

from typing import Dict, List, Optional

from edgepose.train.recipe import StageSpec


def print_plan(run, recipe: List[StageSpec], resume: Optional[Dict]) -> None:
    cfg, c = run.cfg, run.counts
    W, H = cfg.input_size
    lines = [
        f"edgepose-train: {cfg.data} ({run.data_info['format']}) -> {run.out}",
        f"  frames      train {c['train']}  val {c['val']} (every {cfg.val_every}th training frame, picks the best "
        f"epoch)  test {c['test']}",
        f"  model       {cfg.backbone} ({cfg.pretrained} weights)  input {W}x{H}  hidden {cfg.hidden}  "
        f"rotation head {cfg.rotation_head}",
        f"  scene       mean {tuple(round(v, 3) for v in run.norm.mean)} m  scale {run.norm.scale:.3f} m",
    ]
    for spec in recipe:
        what = {"learned": "learned weighting (sp, sq)", "beta": f"beta loss (beta={cfg.beta:g})",
                "reprojection": "reprojection fine-tune"}.get(spec.loss, spec.loss)
        lines.append(f"  {spec.name}      {spec.steps} steps ({spec.epochs} epochs of {spec.steps_per_epoch}) of {what}, "
                     f"Adam lr {spec.lr:g}" + (", skipped" if spec.epochs == 0 else ""))
    if recipe[1].epochs and run.fit.points.shape[1]:
        lines.append(f"  points      {run.fit.points.shape[1]} per frame for reprojection "
                     f"({run.fit.n_synthetic_points} of {len(run.fit)} frames use points drawn in the frustum)")
    lines.append(f"  device      {run.device}  x{run.dist.world_size} process(es)  batch {cfg.batch_size}/process  "
                 f"threads {__import__('torch').get_num_threads()}  channels_last {run.channels_last}  "
                 f"workers {run.workers}  seed {cfg.seed}{'  deterministic' if cfg.deterministic else ''}")
    if resume is not None:
        lines.append(f"  resume      from {resume['path']} ({resume['stage']}, {resume['epoch']} epochs done, "
                     f"step {resume.get('step', 0)})")
    print("\n".join(lines), flush=True)


def _row(name: str, m: Dict, prefix: str) -> str:
    if f"{prefix}.median_position_m" not in m:
        return f"  {name:<22} (not run)"
    return (f"  {name:<22} {m[prefix + '.median_position_m']:>9.3f} m {m[prefix + '.median_rotation_deg']:>8.2f} deg"
            f"   mean {m[prefix + '.mean_position_m']:.3f} m {m[prefix + '.mean_rotation_deg']:.2f} deg")


def _pct(m: Dict, what: str) -> str:
    return "/".join(f"{100 * m[f'test.within_{k}sigma_{what}']:.0f}" for k in (1, 2, 3)) + " %"


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def print_summary(run, metrics: Dict) -> None:
    out = run.out
    n = metrics.get("test.n_frames", 0)
    lines = [
        "",
        f"Done in {metrics['run.train_seconds'] / 60:.1f} min. Test split ({n} frames), median errors:",
        _row("mean pose (baseline)", metrics, "baseline.mean_pose"),
        _row("retrieval (baseline)", metrics, "baseline.retrieval"),
        _row("stage 1", metrics, "stage1"),
    ]
    if metrics.get("memory.size"):
        lines += [_row(f"{metrics['run.final_stage']} regressor", metrics, "regressor"),
                  _row(f"final (+ memory of {metrics['memory.size']})", metrics, "test")]
    else:
        lines.append(_row(f"final ({metrics['run.final_stage']})", metrics, "test"))
    if "baseline.retrieval.median_position_m" in metrics:
        ratio = metrics["test.median_position_m"] / max(metrics["baseline.retrieval.median_position_m"], 1e-12)
        lines.append(f"  final / retrieval median position: {ratio:.2f}"
                     + ("  (the model does not beat looking up the nearest training image: train longer or "
                        "add frames)" if ratio >= 1 else ""))
    if "test.within_1sigma_position" in metrics:
        lines.append(f"  sigma (calibrated x{metrics['calibration.scale_position']:.2f} / "
                     f"x{metrics['calibration.scale_rotation']:.2f} on {metrics['calibration.frames']} honest frames): "
                     f"within 1/2/3 sigma position {_pct(metrics, 'position')}, rotation {_pct(metrics, 'rotation')} "
                     f"(nominal 53/98/100 %), Spearman {_num(metrics.get('test.sigma_spearman_position'))} / "
                     f"{_num(metrics.get('test.sigma_spearman_rotation'))}, AUROC of the worst 10 % "
                     f"{_num(metrics.get('test.sigma_auroc_worst10_position'))} / "
                     f"{_num(metrics.get('test.sigma_auroc_worst10_rotation'))}")
    if metrics.get("memory.size"):
        blend = metrics["memory.blend"]
        folds = metrics.get("memory.folds.models")
        on = (f"chosen on {folds} fold models' answers on views they never saw ({metrics['memory.folds.steps']} steps "
              f"each, {metrics['memory.folds.seconds'] / 60:.1f} min; --fold-models 0 to skip)") if folds else (
            "chosen on " + str(metrics.get("memory.blend_chosen_on", "validation frames")))
        lines.append(f"  memory: the {metrics['memory.k']} nearest training views' pose weighs {blend[0]:.2f} in position, "
                     f"{blend[1]:.2f} in rotation ({on}; 0 = regressor only, --memory-size 0 to turn off)")
    if metrics.get("run.stage2_best_epoch") == 0 and metrics.get("run.final_stage") == "stage2":
        lines.append("  (stage 2 never beat stage 1 on validation: final.pt holds the stage 1 weights)")
    lines += [
        "",
        f"  {out / 'final.pt'}   the model to export",
        f"  {out / 'metrics.json'}   {out / 'metrics.csv'}   {out / 'checkpoints'}/",
        "",
        "Next: export it for the runtime and TensorRT",
        f"  edgepose-export {out} --out {out / 'bundle'} --precision fp32,fp16,int8",
    ]
    print("\n".join(lines), flush=True)
