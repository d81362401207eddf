"""The cached data pipeline: the runtime's preprocessing, labels in loss units, batches."""
import numpy as np
import pytest
import torch

from edgepose.datasets import load_dataset
from edgepose.errors import EdgePoseError
from edgepose.preprocess import adjust_intrinsics, load_and_preprocess
from edgepose.train.data import Normalisation, build_cache, make_loader, split_validation
from edgepose.train.sampling import EpochBatches

from tiny_scene import write_csv_scene


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = write_csv_scene(tmp_path_factory.mktemp("tiny"), n_train=8, n_test=2, size=(80, 60))
    return load_dataset(root)


def test_normalisation_centres_and_scales():
    p = np.array([[0.0, 0, 0], [2.0, 0, 0]])
    n = Normalisation.fit(p)
    assert n.mean == (1.0, 0.0, 0.0) and n.scale == pytest.approx(1.0)
    assert np.allclose(n.apply(p), [[-1, 0, 0], [1, 0, 0]])
    assert Normalisation.fit(np.ones((3, 3))).scale == 1.0  # all cameras at one place


def test_validation_split_is_deterministic_and_disjoint(scene):
    train = scene.split("train")
    fit, val = split_validation(train, 4)
    assert len(val) == 2 and len(fit) == 6
    assert not {id(f) for f in fit} & {id(f) for f in val}
    assert [f.image for f in val] == [train[3].image, train[7].image]
    assert split_validation(train, 0) == (train, [])
    with pytest.raises(EdgePoseError, match="val-every"):
        split_validation(train[:2], 2)


def test_cache_holds_exactly_the_runtime_preprocessing(scene):
    frames = scene.split("train")
    norm = Normalisation.fit([f.position for f in frames])
    cache = build_cache(frames, (32, 24), norm, max_points=16, seed=0)
    assert cache.images.shape == (8, 24, 32, 3) and cache.images.dtype == torch.uint8
    for i in (0, 5):
        expect = load_and_preprocess(frames[i].image, (32, 24))
        assert np.array_equal(cache.images[i].numpy(), expect)
        K = adjust_intrinsics(frames[i].K, (frames[i].width, frames[i].height), (32, 24))
        assert np.allclose(cache.K[i].numpy(), K, atol=1e-4)
    assert np.allclose(cache.position.numpy(), norm.apply(cache.position_m), atol=1e-6)
    assert np.all(cache.rotation.numpy()[:, 0] >= 0)
    assert cache.points.shape == (8, 16, 3) and bool(cache.points_mask.any())
    assert cache.n_synthetic_points == 8  # the CSV scene has neither points nor depth


def test_points_are_in_the_normalised_units_and_in_front_of_the_camera(scene):
    from edgepose.geometry import project_points

    frames = scene.split("train")
    norm = Normalisation.fit([f.position for f in frames])
    cache = build_cache(frames, (32, 24), norm, max_points=16)
    pts_m = cache.points[0].numpy().astype(np.float64) * norm.scale + np.asarray(norm.mean)
    _, depth, valid = project_points(pts_m[cache.points_mask[0].numpy()], cache.position_m[0], cache.rotation_q[0])
    assert valid.all() and (depth > 0).all()


def test_no_points_asked_gives_empty_point_tensors(scene):
    frames = scene.split("test")
    cache = build_cache(frames, (32, 24), Normalisation((0, 0, 0), 1.0))
    assert cache.points.shape == (2, 0, 3) and cache.points_mask.shape == (2, 0)


def test_loader_serves_whole_batches_as_dicts(scene):
    frames = scene.split("train")
    cache = build_cache(frames, (32, 24), Normalisation.fit([f.position for f in frames]))
    sampler = EpochBatches(len(cache), 3, seed=0)
    sampler.set_epoch(0)
    batches = list(make_loader(cache, sampler))
    assert [len(b["index"]) for b in batches] == [3, 3, 2]
    order = [int(i) for b in batches for i in b["index"]]
    assert sorted(order) == list(range(8))
    b = batches[0]
    assert b["image"].shape == (3, 24, 32, 3) and b["position"].shape == (3, 3)
    assert torch.equal(b["image"], cache.images[b["index"]])


def test_validation_blocks_are_contiguous_stretches_from_the_middle_of_each_sequence():
    # test split of other sequences: hold out round(n / every) consecutive frames per sequence,
    # from its middle, so most are several frames from any training frame
    from edgepose.records import FrameRecord
    from edgepose.train.data import sequences_disjoint

    def rec(seq, i):
        return FrameRecord(image=f"{seq}/{i}.png", position=(float(i), 0.0, 0.0), rotation=(1.0, 0.0, 0.0, 0.0),
                           K=np.eye(3), width=8, height=8, sequence=seq)

    train = [rec("a", i) for i in range(40)] + [rec("b", i) for i in range(25)]
    fit, val = split_validation(train, 5, blocks=True)
    assert [(f.sequence, int(f.position[0])) for f in val] == [("a", i) for i in range(16, 24)] + [("b", i) for i in range(10, 15)]
    assert len(fit) + len(val) == len(train) and not {id(f) for f in fit} & {id(f) for f in val}
    # the interleaved split leaves every validation frame beside a training frame; blocks do not
    gap = lambda vs, fs: np.median([min(abs(v.position[0] - f.position[0]) for f in fs if f.sequence == v.sequence) for v in vs])
    assert gap(val, fit) == 2.0 and gap(*split_validation(train, 5)[::-1]) == 1.0
    assert sequences_disjoint(train, [rec("c", 0)]) and not sequences_disjoint(train, [rec("a", 0), rec("c", 1)])
    assert not sequences_disjoint(train, [rec("", 0)])
