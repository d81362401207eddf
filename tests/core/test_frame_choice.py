"""Evenly spread frame indices and the calibration frame count, against hand-worked cases."""
from __future__ import annotations

import pytest

from edgepose.frame_choice import CALIBRATION_FRAMES, spread_indices


@pytest.mark.parametrize("n, k, expected", [
    (10, 4, [0, 3, 6, 9]),          # 9/3 = 3 apart
    (11, 3, [0, 5, 10]),            # ends and the middle
    (7, 2, [0, 6]),                 # first and last
    (5, 1, [0]),
    (4, 9, [0, 1, 2, 3]),           # fewer frames than asked: all of them
    (6, 4, [0, 2, 3, 5]),           # 0, 1.67, 3.33, 5 rounded
    (0, 3, []),
    (5, 0, []),
])
def test_spread_indices_hand_worked(n, k, expected):
    assert spread_indices(n, k).tolist() == expected


def test_spread_indices_are_sorted_distinct_and_in_range_for_every_small_case():
    for n in range(0, 40):
        for k in range(0, 45):
            got = spread_indices(n, k).tolist()
            assert got == sorted(set(got)) and all(0 <= i < n for i in got)
            assert len(got) == min(n, k) or (k < n and len(got) <= k)
            if got and k >= 2:
                assert got[0] == 0 and got[-1] == n - 1


def test_calibration_default_is_the_count_the_readme_documents():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"--calib-frames {CALIBRATION_FRAMES} " in readme
