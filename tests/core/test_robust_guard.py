"""Issue 22, family 3: input we can describe is a message and an exit code, never a traceback.

Real CLIs (``python -m edgepose inspect|synth``) in subprocesses on real folders: output piped
into a reader that stops, names that are not UTF-8 on a strict UTF-8 terminal, a DATA that is
a symbolic-link loop, names over the file system's limit, an output folder that cannot be
created. The guard itself (edgepose.cli.guard.guarded) is also given the OS errors a
read-only or foreign file system raises, which root (these tests' user) never meets."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgepose.cli.guard import EXIT_PIPE, guarded

from dataset_builders import random_poses, write_sevenscenes

ENV_STRICT = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}


def edgepose(*args, **kw):
    return subprocess.run([sys.executable, "-m", "edgepose", *map(os.fsdecode, args)], capture_output=True,
                          timeout=300, **kw)


@pytest.fixture()
def data(tmp_path):
    P, Q = random_poses(30)
    return write_sevenscenes(tmp_path / "data", P, Q) or tmp_path / "data"


def test_inspect_piped_into_a_reader_that_stops_exits_quietly(data):
    proc = subprocess.Popen([sys.executable, "-m", "edgepose", "inspect", str(data), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(16)
    proc.stdout.close()  # what `| head -c 16` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) in (0, EXIT_PIPE) and "Traceback" not in err and "BrokenPipe" not in err, err


def test_a_non_utf8_folder_name_on_a_strict_terminal_is_printed_escaped(data, tmp_path):
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9-data"))
    data.rename(odd)
    proc = edgepose("inspect", odd, env=ENV_STRICT)
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert b"caf\\udce9-data" in proc.stdout or b"caf\\xe9-data" in proc.stdout  # escaped, not raised


def test_a_data_folder_that_is_a_link_loop_is_a_message(tmp_path):
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    proc = edgepose("inspect", tmp_path / "loop")
    err = proc.stderr.decode()
    assert proc.returncode in (1, 2) and "Traceback" not in err and "error" in err, err


@pytest.mark.parametrize("case", ["long-name", "under-a-file", "in-proc"])
def test_synth_output_paths_the_system_refuses_are_messages(tmp_path, case):
    (tmp_path / "file").write_text("x")
    out = {"long-name": tmp_path / ("x" * 300), "under-a-file": tmp_path / "file" / "scene",
           "in-proc": Path("/proc/edgepose-no-such/scene")}[case]
    proc = edgepose("synth", out, "--frames", "4", "--size", "32x24", "--random-views", "0", "--quiet")
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "Traceback" not in err and "edgepose-synth: error:" in err, err
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.parametrize("code, words", [(errno.EROFS, "read-only"), (errno.EACCES, "permission denied"),
                                         (errno.ENAMETOOLONG, "longer than the file system allows")])
def test_the_guard_says_what_the_system_refused_and_where(capsys, code, words):
    def body():
        raise OSError(code, os.strerror(code), "/mnt/card/out/poses.jsonl")

    assert guarded("edgepose-run", body) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgepose-run: error: ") and f"{words}: /mnt/card/out/poses.jsonl" in err


def test_the_guard_lets_unknown_errors_through(capsys):
    def body():
        raise OSError(errno.EIO, "I/O error")

    with pytest.raises(OSError):
        guarded("edgepose-run", body)
