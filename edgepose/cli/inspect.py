"""``edgepose-inspect DATA``: check a dataset before training."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from ..datasets import FORMATS, read_dataset
from ..datasets.summary import summarize
from ..errors import EdgePoseError
from ..jsonsafe import dumps
from .arg_groups import add_dataset_options, check_data_folder
from .guard import guarded

DESCRIPTION = """\
Check a dataset before training: the format detected, frames per split, image sizes,
intrinsics, scene extent, whether 3D points or depth exist, and every problem found.
Exit status 0 when the dataset is usable, 1 when it is not (the reasons are printed), 2 for
bad arguments (DATA is not a folder).

Formats (detected from the files at the top of DATA; --format overrides):
  cambridge   dataset_train.txt / dataset_test.txt + reconstruction.nvm (Cambridge Landmarks)
  7scenes     seq-XX/frame-NNNNNN.{color.png,depth.png,pose.txt}, TrainSplit.txt/TestSplit.txt,
              optional intrinsics.txt (3x3 K; else f=525 at 640x480)
  colmap      cameras / images / points3D (.txt or .bin) in DATA, DATA/sparse or DATA/sparse/0;
              images in DATA/images
  nerf        transforms.json (or transforms_train.json + transforms_test.json), OpenGL axes
  middlebury  *_par.txt (+ README.txt bounding box), e.g. the dino and temple sets
  csv         poses.csv: image,x,y,z,qw,qx,qy,qz,fx,fy,cx,cy[,width,height,split,sequence,timestamp]
              position = camera centre (m), quaternion = camera-to-world wxyz, OpenCV axes

Split policy (formats without a split; or to override one):
  every:K                 frames sorted by image path, frame i is test when i % K == 0 (default every:5)
  sequence:NAME1,NAME2    those sequences (image folders) are test, the rest train
  given                   the format's own split (default when it has one)

Refused (exit 1, each with file:line): NaN or infinite poses, intrinsics, points or timestamps;
an image listed twice or in both train and test (a leak); an image path leaving DATA (unless
--allow-outside-images); files that are not regular files (a FIFO would block). Noted but
accepted: positions or points beyond 1e6 file units, implausible focal lengths.

Conventions of the output: position = camera centre in the world (metres), rotation =
camera-to-world quaternion (w, x, y, z) with w >= 0, OpenCV camera axes (x right, y down,
z forward), K in pixels of the stored images.

examples:
  edgepose-inspect data/dino
  edgepose-inspect data/KingsCollege --json > kings.json
  edgepose-inspect data/capture --format csv --split-policy sequence:run3
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgepose-inspect", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", metavar="DATA", help="the dataset folder")
    add_dataset_options(p, FORMATS)  # --format skips detection
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (format, splits, frames[...], summary, errors, problems)")
    p.add_argument("--no-check-images", action="store_true",
                   help="do not require the image files (inspect the poses only)")
    p.add_argument("--allow-outside-images", action="store_true",
                   help="accept image paths that leave DATA (../x.png, absolute paths); by default they are "
                        "an error, like an image listed twice or in both splits")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded("edgepose-inspect", lambda: _main(args))


def _main(args) -> int:
    check_data_folder(args.data)
    try:
        report = read_dataset(args.data, format=args.format, split_policy=args.split_policy,
                              check_images=not args.no_check_images, allow_outside=args.allow_outside_images)
    except EdgePoseError as exc:
        print(f"edgepose-inspect: error: {exc}", file=sys.stderr)
        return 1
    summary = summarize(report)
    if args.json:
        obj = {"format": summary["format"], "splits": summary["splits"],
               "frames": [f.to_json() for f in report.dataset.frames],
               "summary": {k: v for k, v in summary.items() if k not in ("format", "splits", "errors", "problems")},
               "errors": summary["errors"], "problems": summary["problems"]}
        sys.stdout.write(dumps(obj, indent=1))
        sys.stdout.write("\n")
    else:
        flags = "".join(f" --{k} {v}" for k, v in (("format", args.format), ("split-policy", args.split_policy)) if v)
        flags += " --allow-outside-images" if args.allow_outside_images else ""
        print(render_text(summary, next_flags=flags))
    if report.errors:
        if args.json:
            for e in report.errors:
                print(f"edgepose-inspect: error: {e}", file=sys.stderr)
        return 1
    return 0


def _fmt3(v) -> str:
    return "(" + ", ".join(f"{x:.3f}" for x in v) + ")"


def render_text(s: dict, next_flags: str = "") -> str:
    ext, pts, K = s["scene_extent"], s["points"], s["intrinsics"]["most_common"]
    lines = [
        f"dataset      {s['root']}",
        f"format       {s['format']}",
        f"splits       train {s['splits']['train']}, test {s['splits']['test']}   (policy: {s['split_policy']})",
    ]
    if s["sequences"]:
        seqs = s["sequences"]
        lines.append(f"sequences    {len(seqs)}: {', '.join(seqs[:8])}{' ...' if len(seqs) > 8 else ''}")
    lines += [
        "image sizes  " + ", ".join(f"{k} ({n} frames)" for k, n in s["image_sizes"].items()),
        f"intrinsics   fx {K['fx']:.2f}  fy {K['fy']:.2f}  cx {K['cx']:.2f}  cy {K['cy']:.2f} px"
        + (f"   ({s['intrinsics']['distinct']} distinct K)" if s["intrinsics"]["distinct"] > 1 else ""),
        f"cameras in   {_fmt3(ext['min'])} .. {_fmt3(ext['max'])}  (size {_fmt3(ext['size'])}, file units, metres if metric)",
        f"mean view    {_fmt3(ext['mean_view_direction'])}  (world direction of the cameras' +z)",
    ]
    if pts["frames_with_points"]:
        lines.append(f"3D points    {pts['frames_with_points']} frames, median {pts['median_points_per_frame']:.0f} visible points")
    if pts["frames_with_depth"]:
        lines.append(f"depth maps   {pts['frames_with_depth']} frames (points back-projected from depth)")
    if pts["frames_synthetic"]:
        lines.append(f"no 3D data   {pts['frames_synthetic']} frames: synthetic frustum points for the reprojection loss")
    for e in s["errors"]:
        lines.append(f"ERROR        {e}")
    for p in s["problems"]:
        lines.append(f"note         {p}")
    if s["errors"]:
        lines.append("\nnot usable yet: fix the errors above, then run edgepose-inspect again.")
    else:
        lines.append(f"\nok. next: edgepose-train {s['root']}{next_flags} --out runs/{Path(s['root']).name or 'run'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
