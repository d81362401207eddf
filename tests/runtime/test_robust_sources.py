"""Sources and backends that used to end silently or with a traceback (issue 22, families 3 and 4).

* A video whose container declares N frames but decodes fewer (cut bytes, as a copy stopped
  half-way leaves it) warns with both counts, and ``edgepose-run`` says it in its summary and
  exits 1. Oracles: the frame count we wrote, and OpenCV's own ``VideoCapture`` loop.
* A ``CompressedImage`` decodes by the folder reader's rules: EXIF orientation applied (the
  oracle turns the pixels with numpy, and the same bytes as a file through ``decode_rgb8``).
* ``--backend torch-cuda`` (or a torch device) where CUDA is not available is an error that
  says why and what to use instead: exit 2 from ``edgepose-run``, an ``EdgePoseError`` from
  Python, a failed bench row with the reason. ``CUDA_VISIBLE_DEVICES=""`` hides every GPU, so
  these run on GPU machines too.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgepose.errors import EdgePoseError
from edgepose.image_decode import ORIENTATION_TAG, decode_rgb8
from edgepose.runtime.sources import IncompleteSourceWarning, VideoFileSource

cv2 = pytest.importorskip("cv2", reason="the video source needs OpenCV: pip install opencv-python-headless")

N_FRAMES = 12


def cli(name: str):
    exe = Path(sys.executable).with_name(name)
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "edgepose", name.split("-")[1]]


def run(name, *args, env=None):
    return subprocess.run(cli(name) + [str(a) for a in args], capture_output=True, text=True, timeout=300,
                          env=None if env is None else {**os.environ, **env})


def write_video(path: Path, fourcc: str, n: int = N_FRAMES, size=(64, 48)) -> Path:
    """``n`` frames through OpenCV's own writer (each frame a different grey, with noise)."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, size)
    if not w.isOpened():
        pytest.skip(f"this OpenCV build cannot write {fourcc} into {path.suffix}")
    rng = np.random.default_rng(0)
    for i in range(n):
        f = np.full((size[1], size[0], 3), i * 20, np.uint8)
        f[:, :8] = rng.integers(0, 256, (size[1], 8, 3))
        w.write(f)
    w.release()
    return path


def cut(path: Path, out: Path, keep) -> Path:
    """The first bytes of ``path`` (``keep``: a fraction, or a byte count)."""
    data = path.read_bytes()
    out.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    return out


def opencv_counts(path: Path):
    """``(declared, decoded)`` by OpenCV alone: the oracle."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    declared, decoded = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0
    while cap.read()[0]:
        decoded += 1
    cap.release()
    return declared, decoded


# ------------------------------------------------------------------ a truncated video (family 4)
@pytest.mark.parametrize("suffix, fourcc, keep", [(".avi", "MJPG", 0.8), (".avi", "MJPG", 0.6), (".avi", "XVID", 0.7),
                                                   (".mkv", "MJPG", 0.6), (".avi", "MJPG", "movi")])
def test_a_truncated_video_warns_with_the_frames_declared_and_decoded(tmp_path, suffix, fourcc, keep):
    whole = write_video(tmp_path / f"whole{suffix}", fourcc)
    if keep == "movi":  # every frame cut: the header survives, no frame does
        keep = whole.read_bytes().find(b"movi") + 4
    short = cut(whole, tmp_path / f"short{suffix}", keep)
    declared, decoded = opencv_counts(short)
    assert declared == N_FRAMES and decoded < N_FRAMES, (declared, decoded)  # the case is what it claims
    src = VideoFileSource(short)
    with pytest.warns(IncompleteSourceWarning) as caught:
        frames = list(src)
    assert len(frames) == decoded and all(f.image is not None for f in frames)
    text = str(caught[0].message)
    assert f"declares {N_FRAMES} frames but only {decoded} could be decoded" in text and str(short) in text
    assert src.incomplete == text


@pytest.mark.parametrize("suffix, fourcc", [(".avi", "MJPG"), (".mkv", "MJPG"), (".mp4", "mp4v")])
def test_a_whole_video_is_complete_and_silent(tmp_path, suffix, fourcc):
    src = VideoFileSource(write_video(tmp_path / f"v{suffix}", fourcc))
    with warnings.catch_warnings():
        warnings.simplefilter("error", IncompleteSourceWarning)
        assert len(list(src)) == N_FRAMES
    assert src.incomplete is None


def test_edgepose_run_on_a_truncated_video_says_it_and_exits_1(bundle, tmp_path):
    whole = write_video(tmp_path / "whole.avi", "MJPG")
    short = cut(whole, tmp_path / "short.avi", 0.7)
    _, decoded = opencv_counts(short)
    out = tmp_path / "p.jsonl"
    proc = run("edgepose-run", bundle[0], "--source", short, "--out", out, "--backend", "onnxruntime", "--quiet")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"edgepose-run: warning: {short}: the container declares {N_FRAMES} frames" in proc.stderr
    summary = proc.stderr[proc.stderr.index("frames through"):]
    assert f"incomplete source (exit 1): {short}: the container declares {N_FRAMES} frames but only {decoded}" in summary
    lines = out.read_text().splitlines()
    assert len(lines) == decoded and all(json.loads(x)["ok"] for x in lines)  # what was read is written
    # the whole video: exit 0, nothing said; --max-frames within what decodes asks for no more
    for source, extra in ((whole, ()), (short, ("--max-frames", decoded - 1))):
        proc = run("edgepose-run", bundle[0], "--source", source, "--out", tmp_path / "q.jsonl",
                   "--backend", "onnxruntime", "--quiet", *extra)
        assert proc.returncode == 0 and "incomplete" not in proc.stderr, proc.stderr


# ------------------------------------------------- EXIF orientation of a CompressedImage (family 4)
#: EXIF orientation -> the numpy turn a viewer applies to the stored pixels to show them upright
UPRIGHT = {3: lambda a: a[::-1, ::-1], 6: lambda a: np.rot90(a, -1), 8: lambda a: np.rot90(a, 1),
           2: lambda a: a[:, ::-1]}
#: ... and its inverse: what a camera stores for an upright picture
STORED = {3: lambda a: a[::-1, ::-1], 6: lambda a: np.rot90(a, 1), 8: lambda a: np.rot90(a, -1),
          2: lambda a: a[:, ::-1]}


def _upright_scene(h=24, w=40) -> np.ndarray:
    """A picture no turn maps onto itself: blocks of 8 px (JPEG keeps them) of distinct colours."""
    rng = np.random.default_rng(3)
    return np.kron(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8))


def _encoded(pixels: np.ndarray, fmt: str, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format=fmt, exif=exif.tobytes(), quality=95)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("orientation", sorted(STORED))
def test_compressed_image_exif_orientation_is_applied_like_the_folder_reader(tmp_path, fmt, orientation):
    pytest.importorskip("rosbags", reason="ROS messages need rosbags: pip install 'edgepose[ros]'")
    from edgepose.runtime.ros import images, messages
    from ros_image_bags import compressed_message

    upright = _upright_scene()
    data = _encoded(STORED[orientation](upright), fmt, orientation)
    np.testing.assert_array_equal(UPRIGHT[orientation](STORED[orientation](upright)), upright)  # the oracle's turns
    msg = compressed_message(messages.get_typestore(), upright, 7)
    msg.format, msg.data = f"rgb8; {fmt.lower()} compressed rgb8", np.frombuffer(data, np.uint8)
    out = images.decode_image(msg, "sensor_msgs/msg/CompressedImage")
    assert out.shape == upright.shape
    tol = 0 if fmt == "PNG" else 12  # JPEG's chroma subsampling; a wrong turn of these blocks is ~85 off
    assert np.abs(out.astype(int) - upright.astype(int)).mean() <= tol
    (tmp_path / "frame").write_bytes(data)  # the same bytes as a folder frame: one rule
    np.testing.assert_array_equal(out, decode_rgb8(tmp_path / "frame"))


def test_a_16_bit_png_compressed_image_is_turned_and_scaled_like_its_raw_topic():
    pytest.importorskip("rosbags", reason="ROS messages need rosbags: pip install 'edgepose[ros]'")
    from edgepose.runtime.ros import images, messages

    v = (np.arange(6 * 10, dtype=np.uint16).reshape(6, 10) * 68)  # 0..4012: a 12-bit camera in mono16
    T = messages.get_typestore().types
    hdr = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id="c")
    raw = T["sensor_msgs/msg/Image"](header=hdr, height=6, width=10, encoding="mono16", is_bigendian=0, step=20,
                                     data=np.frombuffer(v.astype("<u2").tobytes(), np.uint8))
    png = T["sensor_msgs/msg/CompressedImage"](header=hdr, format="mono16; png compressed mono16",
                                               data=np.frombuffer(_encoded(STORED[6](v), "PNG", 6), np.uint8))
    upright = images.decode_raw(raw)
    np.testing.assert_array_equal(upright[:, :, 0], np.round(v * 255.0 / 4095).astype(np.uint8))  # by hand
    np.testing.assert_array_equal(images.decode_compressed(png), upright)


def test_corrupt_compressed_data_is_refused_like_a_corrupt_file(tmp_path):
    pytest.importorskip("rosbags", reason="ROS messages need rosbags: pip install 'edgepose[ros]'")
    from edgepose.runtime.ros import images, messages
    from ros_image_bags import compressed_message

    data = _encoded(_upright_scene(), "PNG", 1)[:-40]  # the end of the pixel data cut off
    msg = compressed_message(messages.get_typestore(), _upright_scene(), 7)
    msg.format, msg.data = "png", np.frombuffer(data, np.uint8)
    with pytest.raises(images.ImageDecodeError, match=r"CompressedImage \(png, \d+ bytes\) does not decode: "
                                                      r"cannot decode the image"):
        images.decode_compressed(msg)
    (tmp_path / "f.png").write_bytes(data)
    with pytest.raises(EdgePoseError, match="cannot decode the image"):
        decode_rgb8(tmp_path / "f.png")


# ---------------------------------------------------------------- torch-cuda without CUDA (family 3)
NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}


@pytest.fixture(scope="module")
def checkpoint_bundle(tmp_path_factory, bundle):
    pytest.importorskip("torch", reason="the torch backends need torch")
    from test_torch_runner import torch_bundle

    return torch_bundle.__wrapped__(tmp_path_factory, bundle)[0]


def test_run_with_torch_cuda_and_no_cuda_is_a_clear_error(checkpoint_bundle, frames, tmp_path):
    out = tmp_path / "p.jsonl"
    proc = run("edgepose-run", checkpoint_bundle, "--source", frames, "--out", out, "--backend", "torch-cuda",
               env=NO_GPU)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first.startswith("edgepose-run: error: the torch-cuda backend was asked to run on 'cuda', but CUDA is "
                            "not available here"), first
    assert "CUDA_VISIBLE_DEVICES=''" in first  # why, as far as it is known
    assert "--backend torch" in proc.stderr and "--backend onnxruntime" in proc.stderr  # what to do
    assert not out.exists()


def test_python_api_with_torch_cuda_and_no_cuda_raises_edgepose_error(checkpoint_bundle, frames):
    script = (
        "import sys\n"
        "from edgepose.errors import EdgePoseError\n"
        "from edgepose.runtime import PoseEstimator, open_runner\n"
        "for make in (lambda: open_runner(sys.argv[1], 'torch-cuda', 'fp16'),\n"
        "             lambda: open_runner(sys.argv[1], 'torch', device='cuda:0'),\n"
        "             lambda: PoseEstimator.from_bundle(sys.argv[1], backend='torch-cuda')):\n"
        "    try:\n"
        "        make()\n"
        "    except EdgePoseError as exc:\n"
        "        print(type(exc).__name__, str(exc).splitlines()[0])\n")
    proc = subprocess.run([sys.executable, "-c", script, str(checkpoint_bundle)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **NO_GPU})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3, proc.stdout
    assert all(line.startswith("ConfigError the torch") and "CUDA is not available here" in line for line in lines)


def test_a_torch_device_that_is_not_one_is_refused(checkpoint_bundle):
    from edgepose.errors import ConfigError
    from edgepose.runtime import open_runner

    with pytest.raises(ConfigError, match="'gpu' is not a device torch knows; expected 'cpu', 'cuda' or 'cuda:N'"):
        open_runner(checkpoint_bundle, "torch", device="gpu")


def test_bench_with_torch_cuda_and_no_cuda_fails_the_row_with_the_reason(checkpoint_bundle, tmp_path):
    from bench_support import write_sevenscenes

    data = write_sevenscenes(tmp_path / "data", n_train=2, n_test=3)
    proc = run("edgepose-bench", checkpoint_bundle, "--data", data, "--out", tmp_path / "r", "--backends", "torch-cuda",
               "--precisions", "fp32", "--iters", "2", "--warmup-s", "0", "--no-plots", "--quiet", env=NO_GPU)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # bench: 1 = no row succeeded
    assert "Traceback" not in proc.stderr
    row = json.loads((tmp_path / "r" / "report.json").read_text())["rows"][0]
    assert row["status"] == "failed"
    assert row["error"].startswith("ConfigError: the torch-cuda backend was asked to run on 'cuda', but CUDA is not "
                                   "available here"), row["error"]
