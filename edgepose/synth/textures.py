"""Photos bundled with scikit-image, and the painters that turn them into face textures.

Every photo comes from ``skimage.data`` (the files ship inside the scikit-image wheel, so
nothing is downloaded). scikit-image is optional for the rest of edgepose: it is imported
here, lazily, and its absence raises :class:`~edgepose.errors.MissingDependencyError`.

A *face texture* is a ``uint8 (h, w, 3)`` RGB array covering one rectangular face of the
scene at ``ppm`` texels per metre; row 0 is the face's top edge, column 0 its left edge as
seen from the side the face is visible from.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageOps

from ..errors import EdgePoseError, require

#: colour photos of ``skimage.data`` used as they are
COLOR_PHOTOS: Tuple[str, ...] = (
    "astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry",
    "hubble_deep_field", "colorwheel", "retina",
)
#: grey-level photos of ``skimage.data``; they are tinted before use
GRAY_PHOTOS: Tuple[str, ...] = ("camera", "coins", "clock", "page", "text", "moon")
#: grey-level material photos used for tiled floors, ceilings and wainscots
MATERIALS: Tuple[str, ...] = ("brick", "grass", "gravel", "moon")

#: tints (RGB multipliers) for grey photos and materials
PALETTE: Tuple[Tuple[float, float, float], ...] = (
    (1.00, 0.80, 0.55), (0.55, 0.80, 1.00), (0.65, 1.00, 0.60), (1.00, 0.60, 0.65),
    (0.95, 0.95, 0.55), (0.75, 0.60, 1.00), (0.60, 0.95, 0.95), (1.00, 1.00, 1.00),
)


@lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """``uint8 (h, w, 3)`` RGB of ``skimage.data.<name>()`` (grey photos are replicated).

    Raises :class:`MissingDependencyError` without scikit-image, and :class:`EdgePoseError`
    for a name scikit-image does not bundle.
    """
    data = require("skimage.data", "the synthetic scene (textures are scikit-image's sample photos)",
                   "pip install scikit-image")
    fn = getattr(data, name, None)
    if fn is None or not callable(fn):
        raise EdgePoseError(f"skimage.data has no photo {name!r}",
                            hint=f"use one of {COLOR_PHOTOS + GRAY_PHOTOS + MATERIALS}")
    img = np.asarray(fn())
    if img.dtype != np.uint8:
        img = np.clip(img.astype(np.float64) * (255.0 if img.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def tint(img: np.ndarray, rgb: Sequence[float]) -> np.ndarray:
    """Multiply ``uint8 (h, w, 3)`` by an RGB tint in [0, 1] (keeps ``uint8``)."""
    out = img.astype(np.float32) * np.asarray(rgb, dtype=np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def fit(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Scale ``img`` to cover ``(w, h)`` texels, aspect kept, and crop the centre."""
    im = ImageOps.fit(Image.fromarray(img), (max(1, int(w)), max(1, int(h))), Image.BILINEAR)
    return np.asarray(im)


def photo_for(name: str, index: int) -> np.ndarray:
    """The photo ``name`` for its ``index``-th placement in the scene.

    Grey photos are tinted with palette entry ``index``. Colour photos are used as they are
    on their first pass through the photo list (``index < len(COLOR_PHOTOS + GRAY_PHOTOS)``)
    and tinted on later passes, so a repeated photo does not make two places look alike.
    """
    img = load_photo(name)
    if name in COLOR_PHOTOS:
        if index < len(COLOR_PHOTOS) + len(GRAY_PHOTOS):
            return img
        return tint(img, PALETTE[index % (len(PALETTE) - 1)])   # never the identity tint
    return tint(img, PALETTE[index % len(PALETTE)])


def tiled(materials: Sequence[np.ndarray], w: int, h: int, tile_px: int, choice: np.ndarray,
          tints: np.ndarray) -> np.ndarray:
    """Square tiles of ``tile_px`` texels over ``(w, h)``: a material and a tint per tile.

    ``choice (rows, cols)`` indexes ``materials`` and ``tints (rows, cols, 3)`` gives RGB
    multipliers, row-major from the top-left tile. Distinct neighbouring tiles make the
    place tell-able, which a pose regressor needs.
    """
    rows, cols = -(-h // tile_px), -(-w // tile_px)
    choice = np.asarray(choice)
    if choice.shape != (rows, cols) or tints.shape[:2] != (rows, cols):
        raise EdgePoseError(f"tiled: need {rows}x{cols} tiles, got choice {choice.shape} "
                            f"and tints {tints.shape[:2]}")
    tiles = np.stack([fit(m, tile_px, tile_px) for m in materials]).astype(np.float32)
    big = tiles[choice]                                   # (rows, cols, t, t, 3)
    big = big * tints.astype(np.float32)[:, :, None, None, :]
    big = big.transpose(0, 2, 1, 3, 4).reshape(rows * tile_px, cols * tile_px, 3)
    return np.clip(big + 0.5, 0, 255).astype(np.uint8)[:h, :w]


def photo_strip(names: Sequence[str], w: int, h: int, start: int = 0) -> Tuple[np.ndarray, List[str]]:
    """Photos placed side by side at height ``h`` (aspect kept) until ``w`` texels are covered.

    Cycles through ``names`` from ``start``. Returns the strip ``uint8 (h, w, 3)`` and the
    names used, in order.
    """
    parts, used, x, i = [], [], 0, start
    while x < w:
        name = names[i % len(names)]
        img = photo_for(name, i)
        pw = max(1, int(round(img.shape[1] * h / img.shape[0])))
        pw = min(pw, w - x)
        parts.append(fit(img, pw, h))
        used.append(name)
        x += pw
        i += 1
    return np.concatenate(parts, axis=1), used


def texture_names() -> Dict[str, Tuple[str, ...]]:
    """The photo names each role draws from (written into ``scene.json``)."""
    return {"color": COLOR_PHOTOS, "gray": GRAY_PHOTOS, "materials": MATERIALS}
