"""``edgepose-synth OUT [--frames N] [--size WxH] [--seed S]``: render the built-in scene."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from ..argtypes import nonnegative_int, number, parse_size, positive_int
from ..errors import ConfigError
from ..synth import SynthConfig, generate
from .guard import Signals, guarded

DESCRIPTION = """\
Render the built-in synthetic scene: a room of about 8 x 6 x 3 m whose walls, floor,
ceiling and boxes carry the sample photos bundled with scikit-image (nothing is
downloaded). Cameras at 1-2 m height move along smooth loops around the central block:
train sequences span the whole ring, test sequences run between them, so test poses
lie inside the space covered by training.

The output is a 7-Scenes folder, read by the same code path as real data:

  OUT/seq-01/frame-000000.color.png  RGB, 8 bit
  OUT/seq-01/frame-000000.depth.png  16-bit depth along z in mm (65535 = invalid)
  OUT/seq-01/frame-000000.pose.txt   4x4 camera-to-world (T_world_from_camera), OpenCV axes
  OUT/TrainSplit.txt, TestSplit.txt  one `sequenceN` line per sequence
  OUT/intrinsics.txt                 3x3 K in pixels of the stored images
  OUT/scene.json                     seed, size, frames, room, textures, generator version
  OUT/contact_sheet.png              sample frames of every sequence and a top-down map

The same seed gives the same bytes. OUT is written to a temporary folder and renamed at
the end; an earlier render in OUT is replaced.
"""

EPILOG = """\
examples:
  edgepose-synth runs/synth                          800 frames at 160x120 (about 20 CPU-seconds)
  edgepose-synth runs/tiny --frames 60 --size 64x48  a quick smoke set
  edgepose-synth runs/synth --random-views 200       add a train sequence of random views
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgepose-synth", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", metavar="OUT", help="output folder (created; an earlier render there is replaced)")
    p.add_argument("--frames", type=positive_int, default=800, metavar="N",
                   help="frames in all sequences together (default: 800)")
    p.add_argument("--size", default="160x120", metavar="WxH", help="image size in pixels (default: 160x120)")
    p.add_argument("--seed", type=nonnegative_int, default=0, metavar="S", help="random seed: photo layout and paths (default: 0)")
    p.add_argument("--train-seqs", type=positive_int, default=4, metavar="K", help="train loops (default: 4)")
    p.add_argument("--test-seqs", type=nonnegative_int, default=2, metavar="K", help="test loops (default: 2)")
    p.add_argument("--random-views", type=nonnegative_int, default=0, metavar="N",
                   help="of the frames, N form one extra train sequence of independent random views (default: 0)")
    p.add_argument("--fov", type=number(0, 180, low_open=True, high_open=True), default=60.0, metavar="DEG", help="horizontal field of view (default: 60)")
    p.add_argument("--aa", type=int, default=2, choices=(1, 2, 3, 4),
                   help="colour supersampling per axis; depth always uses the pixel centre (default: 2)")
    p.add_argument("--workers", type=nonnegative_int, default=None, metavar="N",
                   help="render processes (default or 0: the usable cores, at most 8)")
    p.add_argument("--force", action="store_true",
                   help="replace OUT even if it holds something other than an earlier render")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    with Signals():  # SIGTERM stops it like Ctrl-C: the render is written to a temporary folder
        return guarded("edgepose-synth", lambda: _main(args),
                       on_interrupt=f"{args.out} was left as it was (the render is written to a temporary folder)")


def _main(args) -> int:
    cfg = SynthConfig(frames=args.frames, size=parse_size(args.size), seed=args.seed,
                      n_train=args.train_seqs, n_test=args.test_seqs, random_views=args.random_views,
                      aa=args.aa, hfov_deg=args.fov)
    res = generate(args.out, cfg, workers=args.workers, progress=not args.quiet, force=args.force,
                   log=(lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr)))
    counts = {s: sum(len(p) for p in res.plans if p.split == s) for s in ("train", "test")}
    print(f"wrote {res.frames} frames ({counts['train']} train, {counts['test']} test) in "
          f"{len(res.plans)} sequences to {res.out} in {res.seconds:.1f} s ({res.workers} worker(s))")
    print(f"look at {res.out / 'contact_sheet.png'}")
    print(f"next: edgepose-inspect {res.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
