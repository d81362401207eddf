"""The built-in room: geometry (axis-aligned planes and boxes) and its texture atlas.

World frame: metres, z up, the floor is the plane ``z = 0`` and the room spans
``[0, 8] x [0, 6] x [0, 3]`` by default. Every visible face is an axis-aligned rectangle
carrying one face texture (see :mod:`edgepose.synth.textures`); the textures of all faces are
stored end to end in one flat atlas so the renderer can fetch every pixel's colour with a
single integer gather.

Face numbering inside an object (the room or a box): ``k = 2 * axis + side`` where ``side``
0 is the plane at the object's low bound on ``axis`` and 1 the plane at its high bound. The
room's faces are numbered 0..5, box ``b``'s faces ``6 + 6 b + k``. Room faces are seen from
inside (normals point into the room), box faces from outside.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np

from ..errors import EdgePoseError
from . import textures as tx

#: bumped whenever the rendered bytes for a given seed change
GENERATOR_VERSION = "1.1"  # 1.1: loops face the walls within a shared heading band

ROOM_LO = (0.0, 0.0, 0.0)
ROOM_HI = (8.0, 6.0, 3.0)

#: ``(lo xyz, hi xyz)`` metres; cabinets, crates and a bench around a central block. The
#: camera trajectories (see trajectories.py) stay in the free ring between them.
BOXES: Tuple[Tuple[Tuple[float, float, float], Tuple[float, float, float]], ...] = (
    ((3.50, 2.55, 0.0), (4.50, 3.45, 1.10)),   # central block
    ((0.00, 0.00, 0.0), (1.00, 0.80, 1.40)),   # crate, corner (0, 0)
    ((6.90, 0.00, 0.0), (8.00, 1.20, 0.80)),   # low crate, corner (8, 0)
    ((0.00, 4.90, 0.0), (0.70, 6.00, 1.90)),   # tall cabinet, corner (0, 6)
    ((6.60, 5.10, 0.0), (8.00, 6.00, 1.00)),   # crate, corner (8, 6)
    ((3.00, 5.50, 0.0), (4.60, 6.00, 0.60)),   # bench along the y = 6 wall
    ((7.55, 2.30, 0.9), (8.00, 3.70, 1.30)),   # shelf on the x = 8 wall
)
#: the one point light (metres) and its falloff radius (metres)
LIGHT = (4.0, 3.0, 2.4)
LIGHT_RADIUS = 4.5
WAINSCOT_M = 0.9
TILE_M = 1.0
_ROOM_FACE_NAMES = ("wall_x0", "wall_x8", "wall_y0", "wall_y6", "floor", "ceiling")


@dataclass
class Face:
    """One textured rectangle. ``right``/``up`` are the texture's axes in the world (unit)."""

    name: str
    axis: int                   # the face lies in the plane  world[axis] == value
    value: float
    normal: np.ndarray          # (3,) unit, towards the side it is seen from
    right: np.ndarray           # (3,) texture column direction
    up: np.ndarray              # (3,) texture row direction is -up
    u0: float                   # min of <P, right> over the face, metres
    v0: float                   # max of <P, up> over the face, metres
    texture: np.ndarray         # uint8 (h, w, 3)
    photos: List[str] = field(default_factory=list)


@dataclass
class Scene:
    """Geometry plus flat texture atlas; built by :func:`build_scene`.

    Per-face arrays (length ``F``) make the renderer's lookups vectorised.
    """

    seed: int
    ppm: float
    room_lo: np.ndarray         # (3,)
    room_hi: np.ndarray         # (3,)
    boxes: np.ndarray           # (B, 2, 3): lo, hi
    faces: List[Face]
    light: np.ndarray           # (3,)
    atlas: np.ndarray = field(init=False)      # (T, 3) uint8
    normal: np.ndarray = field(init=False)     # (F, 3) float32
    right: np.ndarray = field(init=False)
    up: np.ndarray = field(init=False)
    u0: np.ndarray = field(init=False)         # (F,) float32
    v0: np.ndarray = field(init=False)
    tex_w: np.ndarray = field(init=False)      # (F,) int64
    tex_h: np.ndarray = field(init=False)
    offset: np.ndarray = field(init=False)     # (F,) int64
    face_params_t: np.ndarray = field(init=False)  # (11, F) float32: right, up, normal, u0, v0
    face_index_t: np.ndarray = field(init=False)   # (3, F) int64: tex_w, tex_h, offset

    def __post_init__(self):
        self.normal = np.stack([f.normal for f in self.faces]).astype(np.float32)
        self.right = np.stack([f.right for f in self.faces]).astype(np.float32)
        self.up = np.stack([f.up for f in self.faces]).astype(np.float32)
        self.u0 = np.array([f.u0 for f in self.faces], np.float32)
        self.v0 = np.array([f.v0 for f in self.faces], np.float32)
        self.tex_h = np.array([f.texture.shape[0] for f in self.faces], np.int64)
        self.tex_w = np.array([f.texture.shape[1] for f in self.faces], np.int64)
        sizes = self.tex_h * self.tex_w
        self.offset = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.atlas = np.concatenate([f.texture.reshape(-1, 3) for f in self.faces])
        self.face_params_t = np.ascontiguousarray(np.concatenate(
            [self.right, self.up, self.normal, self.u0[:, None], self.v0[:, None]], axis=1).T.astype(np.float32))
        self.face_index_t = np.stack([self.tex_w, self.tex_h, self.offset])

    def describe(self) -> Dict[str, object]:
        """What was built, for ``scene.json``."""
        return {
            "room_extent_m": {"lo": self.room_lo.tolist(), "hi": self.room_hi.tolist()},
            "boxes_m": [{"lo": b[0].tolist(), "hi": b[1].tolist()} for b in self.boxes],
            "light_m": self.light.tolist(),
            "texels_per_metre": self.ppm,
            "textures": {f.name: f.photos for f in self.faces if f.photos},
        }

    def inside_free_space(self, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Bool ``(N,)``: points ``(N, 3)`` inside the room and outside every box (by ``margin`` m)."""
        p = np.asarray(points, dtype=np.float64)
        ok = np.all((p > self.room_lo + margin) & (p < self.room_hi - margin), axis=-1)
        for lo, hi in self.boxes:
            ok &= ~np.all((p > lo - margin) & (p < hi + margin), axis=-1)
        return ok


def _face_frame(axis: int, sign: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``normal, right, up`` of a face whose normal is ``sign`` times world axis ``axis``.

    Vertical faces have ``up = +z``; horizontal ones ``up = +y``. ``right = up x normal``
    so a photo reads the right way round (not mirrored) from the visible side.
    """
    n = np.zeros(3)
    n[axis] = sign
    up = np.array([0.0, 0.0, 1.0]) if axis != 2 else np.array([0.0, 1.0, 0.0])
    return n, np.cross(up, n), up


def _rect_extent(lo: np.ndarray, hi: np.ndarray, axis: int, value: float, right, up):
    """``u0, v0, width_m, height_m`` of the rectangle of box ``[lo, hi]`` at ``axis = value``."""
    corners = []
    for cx in (lo[0], hi[0]):
        for cy in (lo[1], hi[1]):
            for cz in (lo[2], hi[2]):
                c = np.array([cx, cy, cz])
                c[axis] = value
                corners.append(c)
    c = np.array(corners)
    u, v = c @ right, c @ up
    return float(u.min()), float(v.max()), float(u.max() - u.min()), float(v.max() - v.min())


def _px(metres: float, ppm: float) -> int:
    return max(1, int(round(metres * ppm)))


def build_scene(seed: int = 0, ppm: float = 100.0) -> Scene:
    """Build the room for ``seed``: the geometry is fixed, the photo arrangement is seeded.

    ``ppm`` texels per metre of face (100 gives 1 cm texels, about one texel per pixel
    at 1.4 m from a 160-pixel-wide 60-degree camera).
    """
    if not ppm > 0:
        raise EdgePoseError(f"texels per metre must be > 0, got {ppm}")
    rng = np.random.default_rng([int(seed), 0x5CE2E])
    lo, hi = np.array(ROOM_LO), np.array(ROOM_HI)
    photos = list(tx.COLOR_PHOTOS + tx.GRAY_PHOTOS)
    order = [photos[i] for i in rng.permutation(len(photos))]
    mats = [tx.load_photo(m) for m in tx.MATERIALS]
    palette = np.array(tx.PALETTE)

    faces: List[Face] = []
    cursor = 0
    # room: faces 0..5 in the k = 2 * axis + side order, normals into the room
    for axis in range(3):
        for side in range(2):
            value = (lo if side == 0 else hi)[axis]
            n, right, up = _face_frame(axis, 1.0 if side == 0 else -1.0)
            u0, v0, wm, hm = _rect_extent(lo, hi, axis, value, right, up)
            w, h = _px(wm, ppm), _px(hm, ppm)
            name = _ROOM_FACE_NAMES[2 * axis + side]
            tile = _px(TILE_M, ppm)
            if axis < 2:  # wall: photo band above a tiled wainscot
                band = _px(WAINSCOT_M, ppm)
                strip, used = tx.photo_strip(order, w, h - band, start=cursor)
                cursor += len(used)
                nt = (-(-band // tile), -(-w // tile))
                wall_tint = palette[rng.integers(len(palette))]
                tints = wall_tint * rng.uniform(0.75, 1.0, nt + (1,))
                wains = tx.tiled([mats[0]], w, band, tile, np.zeros(nt, int), tints)
                tex = np.concatenate([strip, wains], axis=0)
                used = used + [tx.MATERIALS[0]]
            else:  # floor: a mosaic of tinted material tiles; ceiling: pale moon tiles
                nt = (-(-h // tile), -(-w // tile))
                if side == 0:
                    choice = rng.integers(0, 3, nt)
                    tints = palette[rng.integers(len(palette), size=nt)] * rng.uniform(0.7, 1.0, nt + (1,))
                    tex = tx.tiled(mats[:3], w, h, tile, choice, tints)
                    used = list(tx.MATERIALS[:3])
                else:
                    tints = np.full(nt + (3,), 0.9) * rng.uniform(0.85, 1.0, nt + (1,))
                    tex = tx.tiled([mats[3]], w, h, tile, np.zeros(nt, int), tints)
                    used = [tx.MATERIALS[3]]
            faces.append(Face(name, axis, float(value), n, right, up, u0, v0, tex, used))
    # boxes: faces seen from outside, one photo per side, a material tile on top
    boxes = np.array(BOXES, dtype=np.float64)
    for b, (blo, bhi) in enumerate(boxes):
        for axis in range(3):
            for side in range(2):
                value = (blo if side == 0 else bhi)[axis]
                n, right, up = _face_frame(axis, -1.0 if side == 0 else 1.0)
                u0, v0, wm, hm = _rect_extent(blo, bhi, axis, value, right, up)
                w, h = _px(wm, ppm), _px(hm, ppm)
                if axis == 2:
                    k = int(rng.integers(len(mats)))
                    tile = min(w, h, _px(0.5, ppm))
                    nt = (-(-h // tile), -(-w // tile))
                    tints = palette[rng.integers(len(palette), size=nt)]
                    tex = tx.tiled([mats[k]], w, h, tile, np.zeros(nt, int), tints)
                    used = [tx.MATERIALS[k]]
                else:
                    name = order[cursor % len(order)]
                    tex = tx.fit(tx.photo_for(name, cursor), w, h)
                    cursor += 1
                    used = [name]
                faces.append(Face(f"box{b}_{'xyz'[axis]}{'-+'[side]}", axis, float(value), n, right, up, u0, v0, tex, used))
    return Scene(int(seed), float(ppm), lo, hi, boxes, faces, np.array(LIGHT))
