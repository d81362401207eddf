"""One error path: every command given a path that is not there (a bundle, a dataset, a
training run; an output that is a file where a folder is needed) exits 2 with
``PROG: error: ...`` on stderr, the path named, and a ``  -> hint`` line saying what to do; no
traceback. Each command's real ``main(argv)`` is called, as its console script does."""
from __future__ import annotations

import importlib

import pytest

MODULES = {"edgepose-run": "edgepose.runtime.cli", "edgepose-bench": "edgepose.runtime.bench.cli",
           "edgepose-export": "edgepose.export.cli", "edgepose-train": "edgepose.train.cli",
           "edgepose-synth": "edgepose.cli.synth", "edgepose-inspect": "edgepose.cli.inspect",
           "edgepose-ros2": "edgepose.runtime.ros.node", "edgepose-demo": "edgepose.cli.demo"}


def cases(tmp):
    """``(prog, argv, the path the message must name)``; ``tmp/nowhere`` does not exist,
    ``tmp/a-file`` is a file, ``tmp/frames`` a real folder of one PNG, ``tmp/data`` an empty folder."""
    missing, a_file, frames = tmp / "nowhere", tmp / "a-file", tmp / "frames"
    return [
        ("edgepose-run", [missing, "--source", frames, "--out", tmp / "p.jsonl"], missing),
        ("edgepose-bench", [missing, "--data", tmp / "data", "--out", tmp / "report"], missing),
        ("edgepose-bench", [tmp / "data", "--data", missing, "--out", tmp / "report"], missing),
        ("edgepose-export", [missing, "--out", tmp / "bundle"], missing),
        ("edgepose-train", [missing, "--out", tmp / "run"], missing),
        ("edgepose-inspect", [missing], missing),
        ("edgepose-synth", [a_file, "--frames", "8"], a_file),
        ("edgepose-ros2", [missing], missing),
        ("edgepose-demo", ["--out", a_file], a_file),
    ]


@pytest.fixture()
def tmp(tmp_path):
    from PIL import Image

    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "frames").mkdir()
    Image.new("RGB", (40, 30)).save(tmp_path / "frames" / "f0.png")
    (tmp_path / "data").mkdir()
    return tmp_path


@pytest.mark.parametrize("index", range(9))
def test_a_missing_path_is_prog_error_with_a_hint_and_exit_2(tmp, index, capsys):
    prog, argv, named = cases(tmp)[index]
    main = importlib.import_module(MODULES[prog]).main
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"{prog}: error: ") and str(named) in lines[0], err
    assert lines[-1].startswith("  -> "), err  # what to do
    assert "Traceback" not in err
    assert not (tmp / "p.jsonl").exists() and not (tmp / "report").exists() and not (tmp / "bundle").exists()


def test_every_command_is_covered():
    assert {c[0] for c in cases(__import__("pathlib").Path("/x"))} == set(MODULES)
