"""Every blend of the pose memory's grid scored on the test split of finished runs.

For each finished run (``RUN/final.pt``) the post-training fit of this checkout is redone on the
run's weights (:func:`benchmarks.sigma_refit.refit_model`); then the test split is answered
at every blend of :data:`edgepose.train.memory_fit.BLEND_GRID` (position and rotation do not
mix, so blend ``(v, v)`` scores both). The table shows what the blend was chosen on (the
scores ``fit_memory`` records: validation frames, or the stored views' out-of-fold answers),
what it chose, the test error at that choice, at every grid value, and retrieval's:

    python benchmarks/blend_grid.py --run RUN1 --run RUN2 --name sigma_blend

It decides nothing; ``benchmarks/results/sigma_blend.md`` holds the rules checked with it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.results_file import append_section, load_now, runs_parser, section_title  # noqa: E402
from benchmarks.sigma_refit import refit_model  # noqa: E402
from benchmarks.train_targets import num  # noqa: E402


def test_grid(model, test):
    """``{blend: (median position error m, median rotation error deg)}`` on ``test``."""
    import torch

    from edgepose.train.evaluate import evaluate
    from edgepose.train.memory_fit import BLEND_GRID

    chosen = model.memory.blend.clone()
    out = {}
    for v in BLEND_GRID:
        model.memory.blend.fill_(v)
        m = evaluate(model, test, torch.device("cpu"))
        out[v] = (m["median_position_m"], m["median_rotation_deg"])
    model.memory.blend.copy_(chosen)
    return out


def rows(run: Path):
    """The table's row for ``run`` and the memory's fit info."""
    model, memory, test, _ = refit_model(run)
    before = json.loads((run / "metrics.json").read_text())
    grid = test_grid(model, test)
    a, b = memory["blend"]
    scores = memory.get("blend_scores") or {}
    on = "validation" if str(memory.get("blend_chosen_on", "")).startswith("validation") else "out-of-fold"
    grid_cells = " / ".join(f"{num(p)}, {num(q, 1)}" for p, q in grid.values())
    chosen_on = " / ".join(num(sc[0], 3 if on == "validation" else 4) for sc in scores.values())
    best = [min(scores, key=lambda v: scores[v][j]) if scores else "-" for j in (0, 1)]  # before any floor
    return (f"| {run.name} | {len(test)} | {on} | {chosen_on} | {best[0]}, {best[1]} | {a:g}, {b:g} | "
            f"{num(grid[a][0])} / {num(grid[b][1], 1)} | {grid_cells} | "
            f"{num(before.get('baseline.retrieval.median_position_m'))} / "
            f"{num(before.get('baseline.retrieval.median_rotation_deg'), 1)} |"), memory


def main(argv=None) -> int:
    a = runs_parser(__doc__, "blend_grid").parse_args(argv)
    from edgepose.train.memory_fit import BLEND_GRID

    load_before = load_now()
    grid_head = " / ".join(f"{v:g}" for v in BLEND_GRID)
    lines = [f"| run | test frames | chosen on | median position there at {grid_head} "
             f"| their best (pos, rot) | chosen (pos, rot) | test at the choice m / deg | test at {grid_head} (m, deg) | retrieval m / deg |",
             "|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for run in map(Path, a.run):
        row, memory = rows(run)
        lines.append(row)
        notes.append(f"- {run.name}: {memory.get('method', '')}")
    section = (section_title("blend_grid.py", argv, load_before) + "(validation scores in m, out-of-fold scores in normalised position units)\n\n"
               + "\n".join(lines) + "\n\n" + "\n".join(notes))
    append_section(HERE / "results" / f"{a.name}.md", "# The pose memory's blend grid on the test split\n", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
