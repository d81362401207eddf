"""Folder sources of a 7-Scenes sequence (issue 14, item 4): ``--source synth/seq-05`` must
read the colour frames only, not the 16-bit depth maps beside them."""
import numpy as np
from PIL import Image

from edgepose.runtime import ImageFolderSource, open_source


def write_sequence(seq, n=4):
    """``frame-NNNNNN.{color.png,depth.png,pose.txt}`` as 7-Scenes and edgepose-synth write them."""
    seq.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.full((6, 8, 3), 40 + i, np.uint8)).save(seq / f"frame-{i:06d}.color.png")
        Image.fromarray(np.full((6, 8), 1500 + i, np.uint16)).save(seq / f"frame-{i:06d}.depth.png")
        (seq / f"frame-{i:06d}.pose.txt").write_text("1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")


def test_sevenscenes_sequence_yields_colour_frames_only(tmp_path):
    write_sequence(tmp_path / "seq-05", n=4)
    src = open_source(tmp_path / "seq-05")
    assert isinstance(src, ImageFolderSource) and len(src) == 4
    frames = list(src)
    assert [f.source.rsplit("/", 1)[-1] for f in frames] == [f"frame-{i:06d}.color.png" for i in range(4)]
    assert all(f.error is None for f in frames)
    assert [int(f.image[0, 0, 0]) for f in frames] == [40, 41, 42, 43]  # the colour pixels, in order
    assert sorted(p.name for p in src.skipped) == sorted(f"frame-{i:06d}.depth.png" for i in range(4))


def test_plain_folder_keeps_every_image(tmp_path):
    for name in ("a.png", "b.depth.png", "c.jpg"):  # no *.color.* file: not the 7-Scenes layout
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / name)
    src = ImageFolderSource(tmp_path)
    assert [p.name for p in src.files] == ["a.png", "b.depth.png", "c.jpg"] and src.skipped == []
