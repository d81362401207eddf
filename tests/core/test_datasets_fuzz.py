"""Fuzzing every reader's rows with hypothesis (issue 14): numbers, tokens and line endings.

Each example changes one row (or one binary record, or one JSON value) of a valid dataset
in its exact on-disk layout and reads it; the reader must either refuse with an
EdgePoseError or return frames whose numbers are all finite. No traceback, no silent NaN.
``benchmarks/robustness_data.py`` runs the same strategies with more examples and counts
the outcomes (benchmarks/results/robustness_data.md).
"""
import os
from collections import Counter

import pytest
from fuzz_datasets import FORMATS, build, one_example, originals_of, read_and_judge
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

#: examples per format (a few hundred; EDGEPOSE_FUZZ_EXAMPLES raises it for a longer hunt)
EXAMPLES = int(os.environ.get("EDGEPOSE_FUZZ_EXAMPLES", "250"))


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    out = {}
    for fmt in FORMATS:
        base = build(fmt, root / fmt)
        assert read_and_judge(base, fmt) == "accepted"  # the unchanged dataset is valid
        out[fmt] = (base, originals_of(fmt, base))
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_reader_rows_fuzz(bases, fmt):
    root, originals = bases[fmt]
    outcomes = Counter()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.data())
    def run(data):
        outcomes[one_example(data, fmt, root, originals)] += 1

    run()
    assert sum(outcomes.values()) >= min(EXAMPLES, 100)
    assert outcomes["refused"] > 0  # the changes do reach the checks
