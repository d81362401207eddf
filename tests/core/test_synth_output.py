"""The synthetic data set on disk: exact 7-Scenes layout, determinism, depth vs pose, CLI."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgepose.errors import ConfigError
from edgepose.geometry import backproject, matrix_to_pose
from edgepose.synth import SynthConfig, generate, read_depth_m
from edgepose.synth.scene import BOXES, ROOM_HI

FRAMES = 18          # 3 per sequence
SIZE = (40, 30)


def _digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "room"
    res = generate(out, SynthConfig(frames=FRAMES, size=SIZE, seed=11), workers=1)
    return out, res


def test_layout_is_exactly_seven_scenes(rendered):
    out, res = rendered
    seqs = [f"seq-{i:02d}" for i in range(1, 7)]
    expected = {"TrainSplit.txt", "TestSplit.txt", "intrinsics.txt", "scene.json", "contact_sheet.png",
                ".edgepose-owner.json"}  # the ownership record: what a later render may replace
    for s in seqs:
        for i in range(3):
            expected |= {f"{s}/frame-{i:06d}.{kind}" for kind in ("color.png", "depth.png", "pose.txt")}
    found = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert found == expected
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == seqs
    assert (out / "TrainSplit.txt").read_text() == "sequence1\nsequence2\nsequence3\nsequence4\n"
    assert (out / "TestSplit.txt").read_text() == "sequence5\nsequence6\n"
    assert not list(out.parent.glob(".*partial")), "the temporary folder was renamed away"

    with Image.open(out / "seq-01/frame-000000.color.png") as im:
        assert (im.format, im.mode, im.size) == ("PNG", "RGB", SIZE)
    with Image.open(out / "seq-01/frame-000000.depth.png") as im:
        assert (im.format, im.mode, im.size) == ("PNG", "I;16", SIZE)
        mm = np.asarray(im)
    assert mm.dtype == np.uint16 and 300 < mm.min() and mm.max() < 10000   # millimetres inside the room

    lines = (out / "seq-03/frame-000002.pose.txt").read_text().splitlines()
    assert len(lines) == 4 and all(len(line.split("\t")) == 4 for line in lines)
    T = np.array([[float(v) for v in line.split("\t")] for line in lines])
    assert np.allclose(T[3], [0, 0, 0, 1])
    assert np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-8) and np.linalg.det(T[:3, :3]) > 0

    K = np.loadtxt(out / "intrinsics.txt")
    assert K.shape == (3, 3) and np.allclose(K, res.K, atol=1e-6)
    assert K[0, 2] == SIZE[0] / 2 and K[1, 2] == SIZE[1] / 2


def test_scene_json_says_what_was_rendered(rendered):
    out, _ = rendered
    meta = json.loads((out / "scene.json").read_text())
    assert meta["seed"] == 11 and meta["size"] == list(SIZE) and meta["frames"] == FRAMES
    assert meta["frames_per_sequence"] == {f"seq-{i:02d}": 3 for i in range(1, 7)}
    assert meta["splits"] == {"train": ["seq-01", "seq-02", "seq-03", "seq-04"], "test": ["seq-05", "seq-06"]}
    assert meta["room_extent_m"]["hi"] == list(ROOM_HI)
    assert len(meta["boxes_m"]) == len(BOXES)
    used = {name for names in meta["textures"].values() for name in names}
    assert {"astronaut", "brick", "coffee"} <= used
    assert meta["generator_version"]


def test_depth_pixels_land_on_the_floor_and_inside_the_room(rendered):
    out, res = rendered
    K = np.loadtxt(out / "intrinsics.txt")
    v, u = np.mgrid[0:SIZE[1], 0:SIZE[0]]
    uv = np.stack([u.ravel() + 0.5, v.ravel() + 0.5], -1)
    boxes = np.array(BOXES)
    on_floor = 0
    for seq in sorted(out.glob("seq-*")):
        for pose_file in sorted(seq.glob("*.pose.txt")):
            T = np.loadtxt(pose_file)
            pos, rot = matrix_to_pose(T)
            depth = read_depth_m(pose_file.with_name(pose_file.name.replace("pose.txt", "depth.png")))
            assert np.isfinite(depth).all(), "a closed room: every pixel has a depth"
            X = backproject(uv, depth.ravel(), K, pos, rot)
            tol = 0.003  # 0.5 mm depth rounding, magnified along oblique rays
            assert (X > -tol).all() and (X < np.array(ROOM_HI) + tol).all()
            # cameras look slightly down: part of the bottom row sees the floor
            bottom = X.reshape(SIZE[1], SIZE[0], 3)[-1]
            on_floor += int((np.abs(bottom[:, 2]) < tol).sum())
            # every point lies on some surface: the floor, a wall, the ceiling or a box face
            d_room = np.minimum(np.abs(X), np.abs(X - np.array(ROOM_HI))).min(axis=1)
            d_box = np.full(len(X), np.inf)
            for lo, hi in boxes:
                inside = np.all((X > lo - tol) & (X < hi + tol), axis=1)
                d_face = np.minimum(np.abs(X - lo), np.abs(X - hi)).min(axis=1)
                d_box = np.minimum(d_box, np.where(inside, d_face, np.inf))
            assert (np.minimum(d_room, d_box) < tol).all(), pose_file
    assert on_floor > 0, "some bottom-row pixels back-project onto z = 0"


def test_same_seed_same_bytes_whatever_the_worker_count(rendered, tmp_path):
    out, _ = rendered
    again = generate(tmp_path / "again", SynthConfig(frames=FRAMES, size=SIZE, seed=11), workers=2)
    assert again.workers == 2
    assert _digest(tmp_path / "again") == _digest(out)


def test_other_seed_other_frames(rendered, tmp_path):
    out, _ = rendered
    generate(tmp_path / "other", SynthConfig(frames=FRAMES, size=SIZE, seed=12), workers=1)
    a, b = _digest(out), _digest(tmp_path / "other")
    assert a.keys() == b.keys()
    assert a["seq-01/frame-000000.pose.txt"] != b["seq-01/frame-000000.pose.txt"]
    assert a["seq-01/frame-000000.color.png"] != b["seq-01/frame-000000.color.png"]


def test_contact_sheet_shows_every_sequence(rendered):
    out, _ = rendered
    with Image.open(out / "contact_sheet.png") as im:
        assert im.format == "PNG"
        sheet = np.asarray(im.convert("RGB"))
    # 6 rows of 160-pixel-wide cells plus a map: wider than tall, and not blank
    assert sheet.shape[1] > 3 * 160 and sheet.shape[0] >= 6 * 120
    assert sheet.std() > 20


def test_refuses_a_folder_that_is_not_a_render(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        generate(tmp_path / "mine", SynthConfig(frames=6, size=(16, 12)), workers=1)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_scene_json_does_not_make_a_folder_a_render(tmp_path):
    """Issue 22, family 1: a user's dataset holding a file named scene.json was replaced."""
    (tmp_path / "data" / "seq-01").mkdir(parents=True)
    (tmp_path / "data" / "scene.json").write_text("{}")
    (tmp_path / "data" / "seq-01" / "frame-000000.color.png").write_bytes(b"user's frame")
    with pytest.raises(ConfigError, match="no record that edgepose-synth wrote it"):
        generate(tmp_path / "data", SynthConfig(frames=6, size=(16, 12)), workers=1)
    assert (tmp_path / "data" / "seq-01" / "frame-000000.color.png").read_bytes() == b"user's frame"


def test_a_re_render_replaces_its_own_files_and_never_a_users(tmp_path):
    out = tmp_path / "room"
    cfg = SynthConfig(frames=6, size=(16, 12), seed=1, random_views=0)
    generate(out, cfg, workers=1)
    generate(out, SynthConfig(frames=6, size=(16, 12), seed=2, random_views=0), workers=1)  # ours: replaced
    assert json.loads((out / "scene.json").read_text())["seed"] == 2
    (out / "seq-01" / "my_notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="1 file.* not written by edgepose-synth: seq-01/my_notes.txt"):
        generate(out, cfg, workers=1)
    assert (out / "seq-01" / "my_notes.txt").read_text() == "keep me"
    generate(out, cfg, workers=1, force=True)  # the user said so
    assert not (out / "seq-01" / "my_notes.txt").exists()


def test_cli_renders_and_prints_the_next_command(tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "edgepose", "synth", str(out), "--frames", "12", "--size", "24x18",
           "--seed", "3", "--quiet", "--workers", "1"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "wrote 12 frames (8 train, 4 test)" in run.stdout
    assert f"next: edgepose-inspect {out}" in run.stdout
    assert json.loads((out / "scene.json").read_text())["size"] == [24, 18]

    bad = subprocess.run(cmd[:-5] + ["--size", "24by18"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "WIDTHxHEIGHT" in bad.stderr


def test_the_seven_scenes_reader_reads_it_like_real_data(rendered):
    from edgepose.datasets import load_dataset
    from edgepose.datasets.points import visible_points

    out, res = rendered
    ds = load_dataset(out)
    assert ds.format == "7scenes" and ds.counts() == {"train": 12, "test": 6}
    plans = {p.name: p for p in res.plans}
    for rec in ds.frames:
        i = int(Path(rec.image).name[6:12])
        assert np.allclose(rec.position, plans[rec.sequence].positions[i], atol=1e-6)
        assert np.allclose(rec.K, res.K, atol=1e-6)
    pts, synthetic = visible_points(ds.frames[0], max_points=200)
    assert not synthetic and len(pts) == 200
    d_room = np.minimum(np.abs(pts), np.abs(pts - np.array(ROOM_HI))).min(axis=1)
    on_box = np.zeros(len(pts), bool)
    for lo, hi in np.array(BOXES):
        inside = np.all((pts > lo - 0.003) & (pts < hi + 0.003), axis=1)
        on_box |= inside & (np.minimum(np.abs(pts - lo), np.abs(pts - hi)).min(axis=1) < 0.003)
    assert ((d_room < 0.003) | on_box).all(), "the reader's back-projected points lie on the scene's surfaces"


def _worker_handlers():
    import signal

    return signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)


def test_render_workers_leave_signals_to_the_parent():
    """Forked workers inherit the CLI's Signals handlers: the pool's SIGTERM on close raised
    Interrupt in each and printed tracebacks after a good render. A worker's SIGTERM is the
    default (die quietly) and Ctrl-C, sent to the whole group, is ignored (the parent stops)."""
    import multiprocessing as mp
    import signal

    from edgepose.interrupts import Signals
    from edgepose.synth.generate import quiet_worker_signals

    if "fork" not in mp.get_all_start_methods():
        pytest.skip("fork start method needed (workers inherit the parent's handlers only there)")
    with Signals():
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN)  # the CLI's handler
        with mp.get_context("fork").Pool(1, initializer=quiet_worker_signals) as pool:
            term, intr = pool.apply(_worker_handlers)
    assert term == signal.SIG_DFL and intr == signal.SIG_IGN
