"""Camera paths through the room: smooth loops (video-like sequences) and random views.

Every loop circles the central block on an ellipse centred on the room, at 1-2 m height,
looking mostly horizontally with a little pitch and roll. The train loops span the whole
ring (the innermost and the outermost ellipse and the full height range), and the test
loops are drawn strictly between them with a smaller height swing, so test positions lie
inside the train positions' bounding box (interpolation, not extrapolation) once a loop has
at least ~10 frames. Cameras face outward, towards the textured walls, within a band of
headings that the train loops cover and the test loops stay inside: a test view is seen
from between two train loops, looking the same way, as in 7-Scenes' test sequences. (A test
loop facing a way no train loop faced would ask a pose regressor to extrapolate.)

Poses follow the project convention: position = camera centre (m, world, z up),
rotation = camera-to-world quaternion wxyz with w >= 0, OpenCV camera axes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import numpy as np

from ..errors import ConfigError
from ..geometry import look_at, quat_canonical, quat_multiply

CENTRE_XY = (4.0, 3.0)
#: semi-axes (m) of the innermost and outermost ellipse along x and y
SEMI_X = (1.5, 2.7)
SEMI_Y = (1.1, 1.9)
#: relative wobble of the semi-axes along a loop
WOBBLE = 0.04
HEIGHT_M = 1.5
HEIGHT_SWING_TRAIN = 0.5
HEIGHT_SWING_TEST = 0.3
#: ring fraction range of the test loops (0 = innermost train loop, 1 = outermost)
TEST_RING = (0.15, 0.7)
#: mean heading of every loop relative to the outward direction (rad): cameras face the
#: textured walls, as a robot circling a room would; each loop draws its own offset in
#: +-HEADING_SPREAD so the train loops cover a band of headings and the test loops fall inside it
HEADING_SPREAD = 0.35


@dataclass
class SequencePlan:
    """The poses of one sequence. ``positions (N, 3)`` m, ``rotations (N, 4)`` wxyz."""

    name: str          # "seq-01"
    number: int        # 1 -> "sequence1" in the split files
    split: str         # "train" | "test"
    kind: str          # "loop" | "random"
    positions: np.ndarray
    rotations: np.ndarray

    def __len__(self) -> int:
        return len(self.positions)


def orientations(position: np.ndarray, yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """Camera-to-world quaternions ``(N, 4)`` from heading angles (radians).

    ``yaw`` is the heading about world +z from +x, ``pitch`` positive looks up, ``roll``
    turns the image clockwise about the optical axis. Built with
    :func:`edgepose.geometry.look_at` (image y = world down) then the roll in the camera frame.
    """
    yaw, pitch, roll = (np.asarray(a, np.float64) for a in (yaw, pitch, roll))
    fwd = np.stack([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)], -1)
    q = look_at(position, np.asarray(position, np.float64) + fwd)
    q_roll = np.stack([np.cos(roll / 2), 0 * roll, 0 * roll, np.sin(roll / 2)], -1)
    return quat_canonical(quat_multiply(q, q_roll))


def loop(n: int, ring: float, height_swing: float, heading: float, rng: np.random.Generator):
    """``positions (n, 3), rotations (n, 4)`` of one closed loop.

    ``ring`` in [0, 1] picks the ellipse between the innermost and outermost one;
    ``heading`` is the mean yaw relative to the outward direction (0 out, pi in, +-pi/2 along).
    """
    direction = rng.choice([-1.0, 1.0])
    theta = rng.uniform(0, 2 * np.pi) + direction * 2 * np.pi * np.arange(n) / max(n, 1)
    ph = rng.uniform(0, 2 * np.pi, 6)
    k = rng.integers(1, 3)
    ax = (SEMI_X[0] + ring * (SEMI_X[1] - SEMI_X[0])) * (1 + WOBBLE * np.sin(2 * theta + ph[0]))
    ay = (SEMI_Y[0] + ring * (SEMI_Y[1] - SEMI_Y[0])) * (1 + WOBBLE * np.sin(3 * theta + ph[1]))
    pos = np.stack([CENTRE_XY[0] + ax * np.cos(theta), CENTRE_XY[1] + ay * np.sin(theta),
                    HEIGHT_M + height_swing * np.sin(k * theta + ph[2])], -1)
    yaw = theta + heading + 0.5 * np.sin(theta + ph[3])
    pitch = -0.08 + 0.15 * np.sin(2 * theta + ph[4])
    roll = 0.07 * np.sin(3 * theta + ph[5])
    return pos, orientations(pos, yaw, pitch, roll)


def random_views(n: int, rng: np.random.Generator):
    """``positions (n, 3), rotations (n, 4)``: independent views anywhere in the train ring,
    facing the walls within the loops' heading band (dense training coverage between loops)."""
    ring = rng.uniform(0, 1, n)
    theta = rng.uniform(0, 2 * np.pi, n)
    ax = SEMI_X[0] + ring * (SEMI_X[1] - SEMI_X[0])
    ay = SEMI_Y[0] + ring * (SEMI_Y[1] - SEMI_Y[0])
    pos = np.stack([CENTRE_XY[0] + ax * np.cos(theta), CENTRE_XY[1] + ay * np.sin(theta),
                    HEIGHT_M + rng.uniform(-HEIGHT_SWING_TRAIN, HEIGHT_SWING_TRAIN, n)], -1)
    # the loops' heading band: outward, +- the per-loop offset and the along-loop swing
    yaw = theta + rng.uniform(-(HEADING_SPREAD + 0.5), HEADING_SPREAD + 0.5, n)
    return pos, orientations(pos, yaw, rng.uniform(-0.23, 0.07, n), rng.uniform(-0.07, 0.07, n))


def split_counts(total: int, parts: int) -> List[int]:
    """``total`` frames over ``parts`` sequences as evenly as possible (first ones get more)."""
    base, extra = divmod(int(total), int(parts))
    return [base + (i < extra) for i in range(parts)]


def plan_sequences(n_frames: int, seed: int = 0, n_train: int = 4, n_test: int = 2,
                   random_views_count: int = 0) -> List[SequencePlan]:
    """All sequences of a render: ``n_train`` train loops, then (if asked) one train sequence
    of ``random_views_count`` random views, then ``n_test`` test loops.

    ``n_frames`` counts every frame written, random views included. Deterministic in ``seed``.
    """
    n_train, n_test, n_frames, n_rand = int(n_train), int(n_test), int(n_frames), int(random_views_count)
    if n_train < 1 or n_test < 1:
        raise ConfigError(f"need at least one train and one test sequence, got {n_train} train, {n_test} test")
    if n_rand < 0 or n_rand >= n_frames:
        raise ConfigError(f"random views must be in [0, frames), got {n_rand} of {n_frames} frames",
                          hint="lower --random-views or raise --frames")
    loops = n_train + n_test
    if n_frames - n_rand < loops:
        raise ConfigError(f"{n_frames - n_rand} loop frames cannot fill {loops} sequences",
                          hint=f"use --frames {loops + n_rand} or more (about 100 per sequence for a useful set)")
    rng = np.random.default_rng([int(seed), 0x7EA7])
    counts = split_counts(n_frames - n_rand, loops)
    rings = [1.0] if n_train == 1 else list(np.linspace(0.0, 1.0, n_train))
    rings = [rings[i] for i in rng.permutation(n_train)]
    plans: List[SequencePlan] = []

    def add(split, kind, pos, rot):
        num = len(plans) + 1
        plans.append(SequencePlan(f"seq-{num:02d}", num, split, kind, pos, rot))

    for i in range(n_train):
        heading = rng.uniform(-HEADING_SPREAD, HEADING_SPREAD)
        add("train", "loop", *loop(counts[i], rings[i], HEIGHT_SWING_TRAIN, heading, rng))
    if n_rand:
        add("train", "random", *random_views(n_rand, rng))
    for i in range(n_test):
        ring = rng.uniform(*TEST_RING)
        heading = rng.uniform(-HEADING_SPREAD / 2, HEADING_SPREAD / 2)
        add("test", "loop", *loop(counts[n_train + i], ring, HEIGHT_SWING_TEST, heading, rng))
    return plans
