"""EpochBatches: the order is a function of (seed, epoch); shards split it; skip resumes it."""
import pytest

from edgepose.errors import EdgePoseError
from edgepose.train.sampling import EpochBatches


def flat(batches):
    return [i for b in batches for i in b]


def test_same_epoch_same_order_other_epoch_other_order():
    s = EpochBatches(20, 4, seed=3)
    s.set_epoch(0)
    a = s.batches()
    s.set_epoch(0)
    assert s.batches() == a
    s.set_epoch(1)
    assert s.batches() != a
    assert sorted(flat(a)) == list(range(20))


def test_two_ranks_take_disjoint_halves_of_one_permutation():
    r0, r1 = EpochBatches(10, 2, seed=1, rank=0, world=2), EpochBatches(10, 2, seed=1, rank=1, world=2)
    for s in (r0, r1):
        s.set_epoch(5)
    i0, i1 = flat(r0.batches()), flat(r1.batches())
    assert len(i0) == len(i1) == 5
    assert sorted(i0 + i1) == list(range(10))
    assert r0.batches_per_epoch() == r1.batches_per_epoch()


def test_uneven_count_is_padded_so_ranks_run_the_same_number_of_steps():
    r0, r1 = EpochBatches(7, 2, seed=0, rank=0, world=2), EpochBatches(7, 2, seed=0, rank=1, world=2)
    assert len(r0.indices()) == len(r1.indices()) == 4
    assert set(r0.indices()) | set(r1.indices()) == set(range(7))


def test_skip_resumes_inside_an_epoch():
    s = EpochBatches(12, 3, seed=0)
    s.set_epoch(2)
    full = list(iter(s))
    s.set_epoch(2, skip=2)
    assert list(iter(s)) == full[2:]
    assert len(s) == len(full) - 2


def test_a_last_batch_of_one_is_merged():
    s = EpochBatches(9, 4, shuffle=False)
    assert [len(b) for b in s.batches()] == [4, 5]


def test_too_few_frames_per_process_is_a_clear_error():
    with pytest.raises(EdgePoseError, match="at least 2"):
        EpochBatches(2, 4, world=2)
