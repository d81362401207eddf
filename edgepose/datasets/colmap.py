"""COLMAP sparse model reader (text or binary) -> frames with visible points from the tracks.

The model is looked for in the root, ``sparse/`` or ``sparse/0/``; images in ``images/``
(else next to the model root). Poses are world-to-camera (``x_cam = R(q) X + t``, OpenCV
axes): our pose is the camera centre ``-R^T t`` and the conjugate quaternion. Camera models
PINHOLE, SIMPLE_PINHOLE, SIMPLE_RADIAL, RADIAL and OPENCV are read; the pinhole part goes
into K and the distortion terms into ``extra["distortion"]`` (noted as a problem when
non-zero: undistort with ``colmap image_undistorter`` for an exact reprojection loss).
COLMAP models have no split: the split policy decides.
"""
from __future__ import annotations

from pathlib import Path
from typing import List


from ..errors import DataFormatError
from ..geometry import pose_from_world_to_camera, quat_to_matrix
from ..records import FrameRecord
from .base import ReaderOutput
from .colmap_model import SUPPORTED_MODELS, ColmapCamera, find_model, read_model
from .images import ImageSizer
from .parsing import checked_K, scale_K, sequence_of


def camera_K(cam: ColmapCamera):
    """``(K (3, 3), distortion dict)`` of a supported camera model."""
    p = cam.params
    if cam.model not in SUPPORTED_MODELS:
        raise DataFormatError(f"camera {cam.id} uses the {cam.model} model; expected one of "
                              f"{', '.join(SUPPORTED_MODELS)}", path=cam.where,
                              hint="undistort the images with `colmap image_undistorter` (it writes PINHOLE)")
    if cam.model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        K = checked_K(p[0], p[0], p[1], p[2], cam.where, None, f"camera {cam.id} {cam.model} params")
        dist = {"k1": float(p[3])} if cam.model == "SIMPLE_RADIAL" else {}
        if cam.model == "RADIAL":
            dist = {"k1": float(p[3]), "k2": float(p[4])}
    else:  # PINHOLE, OPENCV
        K = checked_K(p[0], p[1], p[2], p[3], cam.where, None, f"camera {cam.id} {cam.model} params")
        dist = dict(zip(("k1", "k2", "p1", "p2"), map(float, p[4:8]))) if cam.model == "OPENCV" else {}
    return K, dist


def read(root: Path, sizer: ImageSizer) -> ReaderOutput:
    root = Path(root)
    found = find_model(root)
    if found is None:
        raise DataFormatError("expected cameras.txt/.bin in the root, sparse/ or sparse/0/; found none", path=root)
    folder, ext = found
    model = read_model(folder, ext)
    image_dir = root / "images" if (root / "images").is_dir() else root
    problems: List[str] = []
    distorted = set()
    frames: List[FrameRecord] = []
    for iid in sorted(model.images):
        im = model.images[iid]
        cam = model.cameras.get(im.camera_id)
        if cam is None:
            raise DataFormatError(f"image {iid} ({im.name}) refers to camera {im.camera_id}, which cameras{ext} "
                                  "does not define", path=im.where)
        K, dist = camera_K(cam)
        if any(abs(v) > 1e-12 for v in dist.values()):
            distorted.add(cam.id)
        R_cw = quat_to_matrix(im.q_cw)
        pos, rot = pose_from_world_to_camera(R_cw, im.t_cw)
        path = image_dir / im.name
        w, h = sizer.size(path, declared=(cam.width, cam.height))
        if (w, h) != (cam.width, cam.height):
            if abs(w / h - cam.width / cam.height) > 0.01:
                raise DataFormatError(f"image is {w}x{h} but camera {cam.id} is {cam.width}x{cam.height} "
                                      "(a different aspect ratio)", path=path,
                                      hint="use the images the model was reconstructed from")
            K = scale_K(K, (cam.width, cam.height), (w, h))
        obs = model.observers.get(iid)
        pts = model.xyz[obs] if obs is not None and len(obs) else None
        frames.append(FrameRecord(image=path, position=pos, rotation=rot, K=K, width=w, height=h,
                                  points=pts, sequence=sequence_of(im.name),
                                  extra={"distortion": dist, "camera_model": cam.model, "source_line": im.where}))
    if distorted:
        problems.append(f"camera(s) {sorted(distorted)} have lens distortion: K holds the pinhole part only "
                        "(undistort with `colmap image_undistorter` for an exact reprojection loss)")
    if folder == root / "sparse" / "0" and any(p.is_dir() for p in (root / "sparse").iterdir() if p.name != "0"):
        problems.append("several models under sparse/: reading sparse/0 only")
    if frames and all(f.points is None for f in frames):
        problems.append("points3D has no tracks: the reprojection loss falls back to synthetic points")
    return ReaderOutput(frames, has_split=False, problems=problems)
