"""No pipeline stage thread ever takes CPython's global import lock (runtime/preload.py says why:
a Ctrl-C inside importlib in the main thread can leave the lock held, and the first import in a
stage thread then waits forever; ``edgepose-run`` once hung that way).

Oracle: a real ``edgepose-run`` subprocess whose ``_imp.acquire_lock`` (the lock every import that
finds or loads a module takes, and on Python 3.8 ``importlib.import_module`` of a loaded module
too) is wrapped by a ``sitecustomize.py`` put first on ``PYTHONPATH``; the wrapper logs which
thread took the lock and, for the main thread while stage threads run, whether the Ctrl-C
handler held signals then. It knows nothing of the code under test but thread names
(``edgepose-<stage>``) and the handler's ``_held`` flag.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

from synthetic_bundles import make_synthetic_bundle  # noqa: E402

WATCHER = '''
import _imp, atexit, json, os, signal, threading, traceback

_acquire, _log = _imp.acquire_lock, []


def _held():
    owner = getattr(signal.getsignal(signal.SIGINT), "__self__", None)
    return bool(getattr(owner, "_held", False))


def acquire_lock():
    me = threading.current_thread()
    if me is not threading.main_thread():
        where = [f"{os.path.basename(f.filename)}:{f.lineno}" for f in traceback.extract_stack(limit=40)[:-1]
                 if not f.filename.startswith("<")]  # importlib's own frames say nothing
        _log.append([me.name, " <- ".join(reversed(where[-4:]))])
    elif any(t.name.startswith("edgepose-") for t in threading.enumerate()):
        _log.append(["main, stage threads running, signals " + ("held" if _held() else "NOT held"), ""])
    else:
        _log.append(["main", ""])
    return _acquire()


def _dump():
    with open(os.environ["EDGEPOSE_LOCK_LOG"], "w") as fh:
        json.dump(_log, fh)


_imp.acquire_lock = acquire_lock
atexit.register(_dump)
'''


def cli(name: str):
    exe = Path(sys.executable).with_name(name)
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "edgepose", name.split("-")[1]]


@pytest.fixture(scope="module")
def camera_bundle(tmp_path_factory):
    """A bundle with camera graphs for 40x30 frames (the frames' size: a camera twin is activated
    inside a stage thread), from the real exporter when it runs here, else without them."""
    path = tmp_path_factory.mktemp("stage_imports") / "bundle"
    make_synthetic_bundle(path, size=(32, 24))
    subprocess.run([sys.executable, "-m", "edgepose.export.cli", str(path), "--engine", "no", "--camera-size",
                    "40x30"], capture_output=True, text=True, timeout=120)
    return path


def watched(tmp_path: Path, command: list) -> list:
    """Run ``command`` with the import lock watched; ``[thread, where]`` per acquire."""
    (tmp_path / "watch").mkdir()
    (tmp_path / "watch" / "sitecustomize.py").write_text(WATCHER)
    log = tmp_path / "lock.json"
    env = dict(os.environ, EDGEPOSE_LOCK_LOG=str(log),
               PYTHONPATH=os.pathsep.join([str(tmp_path / "watch")] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    p = subprocess.run([str(a) for a in command], capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    return json.loads(log.read_text())


def lock_takers(tmp_path: Path, *args) -> list:
    """Run ``edgepose-run *args`` with the import lock watched; ``[thread, where]`` per acquire."""
    return watched(tmp_path, cli("edgepose-run") + list(args) + ["--quiet"])


def check(taken: list) -> None:
    assert any(who == "main" for who, _ in taken), "the watcher saw no import at all: it was not installed"
    in_stages = [f"{who}: {where}" for who, where in taken if not who.startswith("main")]
    assert not in_stages, "threads other than the main one took the import lock:\n" + "\n".join(in_stages)
    unheld = [who for who, _ in taken if who.endswith("NOT held")]
    assert not unheld, f"{len(unheld)} imports in the main thread while stage threads ran, signals not held"


@pytest.mark.parametrize("policy", ["every", "latest"])
def test_no_stage_thread_imports_on_a_folder_run(camera_bundle, frames, tmp_path, policy):
    """Frames with a corrupt one (Pillow then loads every plugin), the camera graph, the filter
    and the camera-to-base transform; ``latest`` prepares frames in the inference thread."""
    out = tmp_path / "p.jsonl"
    check(lock_takers(tmp_path, camera_bundle, "--source", frames, "--out", out, "--csv", tmp_path / "p.csv",
                      "--policy", policy, "--filter", "kalman", "--camera-to-base", "optical"))
    n = len(out.read_text().splitlines())
    assert n == 12 if policy == "every" else 1 <= n <= 12


def test_no_stage_thread_imports_on_a_video_run(camera_bundle, tmp_path):
    cv2 = pytest.importorskip("cv2")
    import numpy as np

    video = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (40, 30))
    for i in range(6):
        w.write(np.full((30, 40, 3), i * 40, np.uint8))
    w.release()
    check(lock_takers(tmp_path, camera_bundle, "--source", video, "--out", tmp_path / "p.jsonl"))


def test_no_stage_thread_imports_on_a_bag_run(camera_bundle, tmp_path):
    pytest.importorskip("rosbags")
    from ros_image_bags import gradient_frames, write_image_bag

    bag = write_image_bag(tmp_path / "in.mcap", gradient_frames(6), compressed=(1, 3))
    check(lock_takers(tmp_path, camera_bundle, "--source", bag, "--topic", "/camera/image_raw",
                      "--out", tmp_path / "poses.mcap"))


NODE_CALLBACKS = """
import sys, threading
import numpy as np
from edgepose.runtime.ros.messages import get_typestore
from edgepose.runtime.ros.node import image_source, parse_args
from ros_image_bags import compressed_message, gradient_frames, image_message

ts, img = get_typestore(), gradient_frames(1)[0]
corrupt = compressed_message(ts, img, 4)
corrupt.data = np.frombuffer(b"not an image" * 8, np.uint8)  # Pillow then tries every plugin
messages = {True: [compressed_message(ts, img, 1), corrupt], False: [image_message(ts, img, 2),
                                                                    image_message(ts, img, 3, truncate=True)]}
decoded = []
for compressed in (True, False):
    source = image_source(vars(parse_args(["bundle"] + ["--compressed"] * compressed)[0]))

    def callbacks():  # what rclpy's executor thread runs: the subscription callback
        for m in messages[compressed]:
            source.push(m)
            decoded.append(source._q.get_nowait())

    t = threading.Thread(target=callbacks, name="rclpy-executor")
    t.start()
    t.join()
print([f.error is None for f in decoded])
assert [f.error is None for f in decoded] == [True, False, True, False], [f.error for f in decoded]
"""


def test_no_import_in_the_ros2_node_subscription_callback(tmp_path):
    """edgepose-ros2 decodes each image in rclpy's executor thread (``MessageSource.push``), which
    starts before the pipeline: the node's source comes with decoding's imports done (no rclpy
    here: the callback is run in a thread of that name with rosbags' messages of the same types)."""
    pytest.importorskip("rosbags")
    tests = Path(__file__).resolve().parents[1]
    check(watched(tmp_path, [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(tests)!r})\n" + NODE_CALLBACKS]))
