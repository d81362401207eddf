"""Counts of the I/O robustness cases (issues 14 and 22) and what verifying a bundle costs.

1. The cost of the runtime's sha256 check: :func:`edgepose.bundle.sha256_file` on a 20 MB file
   (the size of an EfficientNet-Lite0 FP32 ONNX file), best of 5, as ms and ms per MB.
2. Given pytest JUnit XML files of ``tests/*/test_robust_*.py`` (this code, and optionally the
   same test files run against the code before the fixes), the number of cases per file and
   their outcomes: a case that fails before and passes after is one the fixes made pass.
3. The same cases grouped by issue 22's families (:data:`FAMILIES`: data loss, symlinks that
   escape, tracebacks, silent acceptance, hangs): the rerun must show 0 failing in each.

usage::

    python -m pytest -q --junitxml=new.xml $(python benchmarks/robustness_io.py --list-tests)
    (the same in a checkout of the earlier commit, with these test files copied in: old.xml)
    python benchmarks/robustness_io.py --junit new.xml --baseline-junit old.xml
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
import re
from typing import Dict, List, Optional, Tuple

from edgepose.bundle import sha256_file


#: the robust test files (issue 14's five, then issue 22's)
TEST_FILES = ["tests/core/test_robust_core.py", "tests/runtime/test_robust_run.py", "tests/runtime/test_robust_bundle.py",
              "tests/train/test_robust_train.py", "tests/export/test_robust_export.py",
              "tests/core/test_outputs.py", "tests/core/test_robust_guard.py", "tests/core/test_manifest_typed.py",
              "tests/core/test_datasets_symlinks.py", "tests/core/test_datasets_silent.py",
              "tests/core/test_synth_output.py", "tests/runtime/test_robust_outputs.py",
              "tests/runtime/test_robust_sources.py"]

#: issue 22's families: (family, regular expression over "file::test") in order; the first match wins
FAMILIES: List[Tuple[str, str]] = [
    ("hang", r"fifo|sigterm_during_(synth|export)"),
    ("data loss", r"test_outputs\.py|never_writes_over|bench_out_is|never_lands|killed_exports_partial|another_tool"
                  r"|inside_its_dataset|claims_its_folder|scene_json_does_not|re_render_replaces|still_writes_beside"),
    ("symlink escape", r"test_datasets_symlinks\.py"),
    ("silent acceptance", r"test_datasets_silent\.py|each_bad_field|static_batch_range|every_problem_is_listed"
                          r"|content_must_agree|swapped_precision|wrong_shape|round_trip_keeps|older_bundle"
                          r"|refuses_them_from_python|absurd_numbers_before_they_reach"
                          r"|truncated_video|whole_video_is_complete|compressed_image|compressed_data"),
    ("traceback", r"test_robust_guard\.py|not_a_manifest_are_a_message|folder_or_huge|corrupt_graph|piped_into"
                  r"|run_parser_refuses_absurd|torch_cuda_and_no_cuda|torch_device_that_is_not"),
]


def family_of(name: str) -> Optional[str]:
    """The issue-22 family of test ``name`` (``file::test[params]``), or ``None``."""
    return next((fam for fam, pattern in FAMILIES if re.search(pattern, name)), None)


def family_table(new: Dict[str, str], old: Optional[Dict[str, str]]) -> str:
    """Cases per issue-22 family: how many, how many fail now, how many failed before."""
    cols = ["cases", "failing now"] + (["failed before"] if old is not None else [])
    rows = {fam: defaultdict(int) for fam, _ in FAMILIES}
    for name, status in new.items():
        fam = family_of(name)
        if fam is None:
            continue
        rows[fam]["cases"] += 1
        rows[fam]["failing now"] += status == "failed"
        if old is not None:
            rows[fam]["failed before"] += old.get(name, "failed") == "failed"
    lines = ["| issue 22 family | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    lines += [f"| {fam} | " + " | ".join(str(rows[fam][c]) for c in cols) + " |" for fam, _ in FAMILIES]
    return "\n".join(lines)


def hash_cost(mb: int = 20, repeats: int = 5) -> Tuple[float, float]:
    """``(best ms, ms per MB)`` of sha256 over an ``mb`` MB file."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "model.onnx"
        p.write_bytes(os.urandom(mb * 1_000_000))
        sha256_file(p)  # page cache warm, as for a bundle that was just copied or opened
        best = min(_timed(p) for _ in range(repeats))
    return best * 1e3, best * 1e3 / mb


def _timed(p: Path) -> float:
    t0 = time.perf_counter()
    sha256_file(p)
    return time.perf_counter() - t0


def outcomes(path: Path) -> Dict[str, str]:
    """``{file::test: passed|failed|skipped}`` from a JUnit XML file (collection errors count as failed)."""
    out: Dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
        if case.find("skipped") is not None:
            out[name] = "skipped"
        elif case.find("failure") is not None or case.find("error") is not None:
            out[name] = "failed"
        else:
            out[name] = "passed"
    return out


def table(new: Dict[str, str], old: Optional[Dict[str, str]]) -> str:
    per_file = defaultdict(lambda: defaultdict(int))
    for name, status in new.items():
        f = name.split("::")[0]
        per_file[f]["cases"] += 1
        per_file[f][status] += 1
        if old is not None:
            per_file[f]["failed before" if old.get(name, "failed") == "failed" else "passed before"] += 1
    cols = ["cases", "passed", "failed", "skipped"] + (["failed before", "passed before"] if old is not None else [])
    lines = ["| test file | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    total = defaultdict(int)
    for f in sorted(per_file):
        lines.append(f"| `{f}` | " + " | ".join(str(per_file[f][c]) for c in cols) + " |")
        for c in cols:
            total[c] += per_file[f][c]
    lines.append("| **all** | " + " | ".join(f"**{total[c]}**" for c in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--junit", type=Path, help="JUnit XML of the robust tests on this code")
    ap.add_argument("--baseline-junit", type=Path, help="JUnit XML of the same tests on the code before the fixes")
    ap.add_argument("--list-tests", action="store_true", help="print the robust test files and exit")
    args = ap.parse_args()
    if args.list_tests:
        print(" ".join(TEST_FILES))
        return
    ms, per_mb = hash_cost()
    print(f"sha256 of a 20 MB file: {ms:.1f} ms ({per_mb:.2f} ms/MB), best of 5")
    if args.junit:
        new = outcomes(args.junit)
        old = outcomes(args.baseline_junit) if args.baseline_junit else None
        print(table(new, old))
        print()
        print(family_table(new, old))
        if old is not None:
            still = [n for n, s in new.items() if s != "passed"]
            passed_before = [n for n, s in new.items() if old.get(n) == "passed"]
            print(f"\nnot passing now: {still or 'none'}")
            print(f"passing before the fixes too: {passed_before or 'none'}")


if __name__ == "__main__":
    main()
