"""A contact sheet: sample frames of every sequence beside a top-down map of the paths.

One row per sequence (label, then frames evenly spaced along it), and on the right the room
seen from above (boxes grey, train paths blue, test paths orange, random views as dots)
so a glance tells whether the test split lies inside the train coverage.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from edgepose.frame_choice import spread_indices

from .trajectories import SequencePlan

TRAIN_RGB = (60, 120, 230)
TEST_RGB = (240, 140, 30)
RANDOM_RGB = (120, 120, 120)
LABEL_W = 86
BG = (24, 24, 24)


def top_down_map(plans: Sequence[SequencePlan], room_lo, room_hi, boxes, height: int) -> Image.Image:
    """The room from above, ``height`` pixels tall, x to the right and y up."""
    lo, hi = np.asarray(room_lo, float), np.asarray(room_hi, float)
    pad = 10
    s = (height - 2 * pad) / (hi[1] - lo[1])
    width = int(round((hi[0] - lo[0]) * s)) + 2 * pad
    im = Image.new("RGB", (width, height), (235, 235, 228))
    dr = ImageDraw.Draw(im)

    def xy(p):
        return (pad + (p[0] - lo[0]) * s, height - pad - (p[1] - lo[1]) * s)

    for blo, bhi in np.asarray(boxes, float):
        (x0, y1), (x1, y0) = xy(blo), xy(bhi)
        dr.rectangle([x0, y0, x1, y1], fill=(150, 150, 150), outline=(90, 90, 90))
    for p in plans:
        colour = RANDOM_RGB if p.kind == "random" else (TRAIN_RGB if p.split == "train" else TEST_RGB)
        pts = [xy(q) for q in p.positions]
        if p.kind == "random":
            for x, y in pts:
                dr.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=colour)
        elif len(pts) > 1:
            dr.line(pts + [pts[0]], fill=colour, width=2)
    (x0, y1), (x1, y0) = xy(lo), xy(hi)
    dr.rectangle([x0, y0, x1, y1], outline=(0, 0, 0), width=2)
    dr.text((pad + 4, pad + 2), "top view: train blue, test orange, random views grey dots", fill=(0, 0, 0))
    return im


def make_contact_sheet(out: Path, plans: Sequence[SequencePlan], columns: int, room_lo, room_hi,
                       boxes, cell_width: int = 160) -> Image.Image:
    """Build the sheet from the colour PNGs already written under ``out``."""
    cells, cell_h = [], None
    for p in plans:
        row = []
        for i in spread_indices(len(p), columns).tolist():
            with Image.open(out / p.name / f"frame-{i:06d}.color.png") as im:
                im = im.convert("RGB")
                if im.width != cell_width:
                    h = max(1, int(round(im.height * cell_width / im.width)))
                    im = im.resize((cell_width, h), Image.NEAREST)
                row.append(im)
                cell_h = im.height
        cells.append(row)
    gap = 2
    rows_h = len(plans) * (cell_h + gap) + gap
    map_im = top_down_map(plans, room_lo, room_hi, boxes, max(rows_h, 200))
    width = LABEL_W + columns * (cell_width + gap) + gap + map_im.width
    sheet = Image.new("RGB", (width, max(rows_h, map_im.height)), BG)
    dr = ImageDraw.Draw(sheet)
    for r, (p, row) in enumerate(zip(plans, cells)):
        y = gap + r * (cell_h + gap)
        colour = TRAIN_RGB if p.split == "train" else TEST_RGB
        dr.text((6, y + 4), p.name, fill=(255, 255, 255))
        dr.text((6, y + 18), f"{p.split} {p.kind}", fill=colour)
        dr.text((6, y + 32), f"{len(p)} frames", fill=(200, 200, 200))
        for c, im in enumerate(row):
            sheet.paste(im, (LABEL_W + gap + c * (cell_width + gap), y))
    sheet.paste(map_im, (width - map_im.width, 0))
    return sheet
