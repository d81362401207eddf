"""Writers of tiny datasets in the exact on-disk layouts, for the dataset-reader tests.

Each builder takes poses in edgepose's convention (camera centre, camera-to-world wxyz,
OpenCV axes) and writes them in the format's own convention with independent maths (scipy
or explicit matrices), so a reader that converts wrongly fails the round trip.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

CAMBRIDGE_HEADER = "Visual Landmark Dataset V1\nImageFile, Camera Position [X Y Z W P Q R]\n\n"


def random_poses(n, seed=0, radius=3.0):
    """``(positions (n, 3), rotations (n, 4) wxyz camera-to-world)``: cameras looking near the origin."""
    rng = np.random.default_rng(seed)
    P = rng.normal(size=(n, 3))
    P = radius * P / np.linalg.norm(P, axis=1, keepdims=True)
    Q = []
    for p in P:
        z = -p / np.linalg.norm(p) + rng.normal(scale=0.05, size=3)
        z /= np.linalg.norm(z)
        x = np.cross(z, [0.3, 0.1, 1.0])
        x /= np.linalg.norm(x)
        R = np.stack([x, np.cross(z, x), z], axis=1)  # columns: camera axes in world
        xyzw = Rotation.from_matrix(R).as_quat()
        q = np.array([xyzw[3], *xyzw[:3]])
        Q.append(q if q[0] >= 0 else -q)
    return P, np.array(Q)


def scipy_R(q_wxyz):
    """Rotation matrix of a wxyz quaternion via scipy (scalar-last)."""
    w, x, y, z = q_wxyz
    return Rotation.from_quat([x, y, z, w]).as_matrix()


def wxyz_of(R):
    x, y, z, w = Rotation.from_matrix(R).as_quat()
    return np.array([w, x, y, z])


def write_png(path: Path, size=(16, 12), value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value // 2, 30)).save(path)


def write_cambridge(root: Path, P, Q, points, size=(32, 18), focal=1600.0, images=True):
    """Two list files (first 3 train, rest test), an NVM whose cameras are the same poses, and
    3D points seen by every other camera."""
    root.mkdir(parents=True, exist_ok=True)
    names = [f"seq{1 + i % 2}/frame{i:05d}.png" for i in range(len(P))]
    rows = {"train": [], "test": []}
    cams = []
    for i, (p, q) in enumerate(zip(P, Q)):
        R_cw = scipy_R(q).T
        q_cw = wxyz_of(R_cw)  # WPQR: world-to-camera
        rows["train" if i < 3 else "test"].append(f"{names[i]} " + " ".join(f"{v:.9f}" for v in (*p, *q_cw)))
        cams.append(f"{names[i][:-4]}.jpg {focal} " + " ".join(f"{v:.9f}" for v in (*q_cw, *p)) + " 0.01 0")
        if images:
            write_png(root / names[i], size)
    (root / "dataset_train.txt").write_text(CAMBRIDGE_HEADER + "\n".join(rows["train"]) + "\n")
    (root / "dataset_test.txt").write_text(CAMBRIDGE_HEADER + "\n".join(rows["test"]) + "\n")
    pts = []
    for k, X in enumerate(points):
        seen = [i for i in range(len(P)) if (i + k) % 2 == 0]
        meas = " ".join(f"{i} {k} 1.0 2.0" for i in seen)
        pts.append(" ".join(f"{v:.9f}" for v in X) + f" 200 100 50 {len(seen)} {meas}")
    (root / "reconstruction.nvm").write_text(
        "NVM_V3\n\n" + f"{len(P)}\n" + "\n".join(cams) + "\n\n" + f"{len(points)}\n" + "\n".join(pts) + "\n\n0\n")
    return names


def write_sevenscenes(root: Path, P, Q, size=(16, 12), splits=True, K=None, depth=None):
    """seq-01 (train) and seq-02 (test), frames split between them; tab-separated 4x4 poses."""
    root.mkdir(parents=True, exist_ok=True)
    half = len(P) // 2
    for i, (p, q) in enumerate(zip(P, Q)):
        seq = root / ("seq-01" if i < half else "seq-02")
        stem = f"frame-{i:06d}"
        T = np.eye(4)
        T[:3, :3] = scipy_R(q)
        T[:3, 3] = p
        seq.mkdir(parents=True, exist_ok=True)
        (seq / f"{stem}.pose.txt").write_text("\n".join("\t".join(f"{v:.9e}" for v in row) + "\t" for row in T) + "\n")
        write_png(seq / f"{stem}.color.png", size)
        if depth is not None:
            Image.fromarray(depth.astype(np.uint16)).save(seq / f"{stem}.depth.png")
    if splits:
        (root / "TrainSplit.txt").write_text("sequence1\n")
        (root / "TestSplit.txt").write_text("sequence2\n")
    if K is not None:
        (root / "intrinsics.txt").write_text("\n".join(" ".join(f"{v:.6f}" for v in row) for row in K) + "\n")


def write_nerf(root: Path, P, Q, size=(20, 10), angle_x=0.8, with_ext=False, split=False):
    root.mkdir(parents=True, exist_ok=True)
    flip = np.diag([1.0, -1.0, -1.0])
    frames = []
    for i, (p, q) in enumerate(zip(P, Q)):
        T = np.eye(4)
        T[:3, :3] = scipy_R(q) @ flip  # OpenCV -> OpenGL camera axes
        T[:3, 3] = p
        write_png(root / "images" / f"r_{i}.png", size)
        frames.append({"file_path": f"./images/r_{i}" + (".png" if with_ext else ""), "transform_matrix": T.tolist()})
    meta = {"camera_angle_x": angle_x}
    if split:
        (root / "transforms_train.json").write_text(json.dumps({**meta, "frames": frames[:-2]}))
        (root / "transforms_test.json").write_text(json.dumps({**meta, "frames": frames[-2:]}))
    else:
        (root / "transforms.json").write_text(json.dumps({**meta, "frames": frames}))


def write_middlebury(root: Path, P, Q, K, size=(16, 12), box=None):
    root.mkdir(parents=True, exist_ok=True)
    lines = [str(len(P))]
    for i, (p, q) in enumerate(zip(P, Q)):
        R_cw = scipy_R(q).T
        t = -R_cw @ p
        lines.append(f"obj{i + 1:04d}.png " + " ".join(f"{v:.12f}" for v in (*K.ravel(), *R_cw.ravel(), *t)))
        write_png(root / f"obj{i + 1:04d}.png", size)
    (root / "obj_par.txt").write_text("\n".join(lines) + "\n")
    if box is not None:
        (root / "README.txt").write_text("The (tight) bounding box for the model is\n"
                                         f"({box[0][0]} {box[0][1]} {box[0][2]})\n({box[1][0]} {box[1][1]} {box[1][2]})\n")


def colmap_inputs(root: Path, n=4, size=(16, 12), seed=31):
    """``(cameras, images, points)`` of a tiny PINHOLE COLMAP model (the arguments of
    ``write_model_txt`` / ``write_model_bin``) with its images written under ``root/images``."""
    P, Q = random_poses(n, seed=seed)
    X = np.random.default_rng(seed).uniform(-0.5, 0.5, size=(3, 3))
    cameras = [(1, "PINHOLE", size[0], size[1], [20.0, 21.0, 8.0, 6.0])]
    images = []
    for i, (p, q) in enumerate(zip(P, Q)):
        R_cw = scipy_R(q).T
        images.append((i + 1, wxyz_of(R_cw), -R_cw @ p, 1, f"cam{i}.png"))
        write_png(root / "images" / f"cam{i}.png", size)
    points = [(100 + k, X[k], [1 + (k + j) % n for j in range(2)]) for k in range(3)]
    return cameras, images, points


CSV_HEADER = "image,x,y,z,qw,qx,qy,qz,fx,fy,cx,cy,width,height,split"


def write_csv_dataset(root: Path, rows=None, n=5, size=(16, 12), header=CSV_HEADER):
    """``poses.csv`` with ``n`` valid rows (test every 5th) then ``rows`` (strings) appended;
    the images of the valid rows are written. Returns the line number of the first extra row."""
    root.mkdir(parents=True, exist_ok=True)
    P, Q = random_poses(n, seed=41)
    lines = [header]
    for i, (p, q) in enumerate(zip(P, Q)):
        write_png(root / "frames" / f"{i:03d}.png", size)
        split = "test" if i % 5 == 0 else "train"
        sized = f",{size[0]},{size[1]}" if ",width,height" in header else ""
        lines.append(f"frames/{i:03d}.png," + ",".join(f"{v:.9f}" for v in (*p, *q)) + f",20,20,8,6{sized},{split}")
    (root / "poses.csv").write_text("\n".join(lines + list(rows or [])) + "\n")
    return len(lines) + 1
