"""Issue 22, family 1: an output is never an input (edgepose-run, edgepose-bench).

Real CLIs in subprocesses on a real synthetic bundle, a folder of PNG frames and a 7-Scenes
dataset; each case names an output that is (or is inside, directly or through a symbolic
link) something the same command reads, or the same file as another output. The oracle: the
bytes of every input are unchanged, the exit code is 2 and the message names the option."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench_support import write_sevenscenes

PY = sys.executable


def cli(name):
    return [str(Path(PY).with_name(name))]


def digest(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def world(bundle, frames, tmp_path):
    b = tmp_path / "bundle"
    shutil.copytree(bundle[0], b)
    src = tmp_path / "frames"
    shutil.copytree(frames, src)
    data = write_sevenscenes(tmp_path / "data")
    return b, src, data


def run(*args):
    return subprocess.run(cli("edgepose-run") + [str(a) for a in args] + ["--quiet", "--precision", "fp32"],
                          capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("case", ["manifest", "bundle-onnx", "frame", "frame-folder", "csv-in-data", "plot-in-data",
                                  "through-link", "out-equals-csv", "csv-equals-plot"])
def test_run_never_writes_over_what_it_reads(world, tmp_path, case):
    b, src, data = world
    first = sorted(src.iterdir())[0]
    link = tmp_path / "link"
    os.symlink(b, link)
    args = {
        "manifest": (b, "--source", src, "--out", b / "edgepose.json"),
        "bundle-onnx": (b, "--source", src, "--out", b / "model.onnx"),
        "frame": (b, "--source", src, "--out", first),
        "frame-folder": (b, "--source", src, "--out", src / "new" / "poses.jsonl"),
        "csv-in-data": (b, "--source", f"dataset:{data}", "--out", tmp_path / "p.jsonl", "--csv", data / "poses.csv"),
        "plot-in-data": (b, "--source", f"dataset:{data}", "--out", tmp_path / "p.jsonl", "--plot",
                         data / "seq-02" / "t.png"),
        "through-link": (b, "--source", src, "--out", link / "edgepose.json"),
        "out-equals-csv": (b, "--source", src, "--out", tmp_path / "x.txt", "--csv", tmp_path / "x.txt"),
        "csv-equals-plot": (b, "--source", src, "--out", tmp_path / "p.jsonl", "--csv", tmp_path / "y",
                            "--plot", tmp_path / "." / "y"),
    }[case]
    before = [digest(b), digest(src), digest(data)]
    proc = run(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    words = "name the same file" if case.endswith(("csv", "plot")) and "equals" in case else "overwrite what this command reads"
    assert words in proc.stderr, proc.stderr
    assert [digest(b), digest(src), digest(data)] == before
    assert not (tmp_path / "x.txt").exists() and not (tmp_path / "y").exists()


def test_run_still_writes_beside_its_inputs(world, tmp_path):
    b, src, _ = world
    proc = run(b, "--source", src, "--out", tmp_path / "poses.jsonl", "--csv", tmp_path / "poses.csv")
    assert proc.returncode == 0, proc.stderr
    assert len((tmp_path / "poses.jsonl").read_text().splitlines()) == len(list(src.iterdir()))


@pytest.mark.parametrize("case", ["file", "in-bundle", "in-data"])
def test_bench_out_is_a_new_folder_outside_its_inputs(world, tmp_path, case):
    b, _, data = world
    (tmp_path / "report.txt").write_text("mine")
    out = {"file": tmp_path / "report.txt", "in-bundle": b / "report", "in-data": data / "report"}[case]
    before = [digest(b), digest(data)]
    proc = subprocess.run(cli("edgepose-bench") + [str(b), "--data", str(data), "--out", str(out), "--no-plots",
                                                   "--iters", "2", "--warmup-s", "0", "--no-power"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert ("is a file" if case == "file" else "overwrite what this command reads") in proc.stderr
    assert [digest(b), digest(data)] == before and (tmp_path / "report.txt").read_text() == "mine"


# --------------------------------------------------------------------------- families 3 and 5
@pytest.mark.parametrize("suffix", [".mcap", ".db3", ".bag"])
@pytest.mark.parametrize("topic", [True, False])
def test_a_bag_source_that_is_a_fifo_is_refused_not_a_hang(world, tmp_path, suffix, topic):
    b, _, _ = world
    fifo = tmp_path / f"flight{suffix}"
    os.mkfifo(fifo)
    extra = ["--topic", "/camera/image_raw"] if topic else []
    proc = subprocess.run(cli("edgepose-run") + [str(b), "--source", str(fifo), "--out", str(tmp_path / "p.jsonl"),
                                                 "--quiet", *extra], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "FIFO" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_run_piped_into_a_reader_that_stops_exits_quietly(world, tmp_path):
    b, src, _ = world
    many = tmp_path / "many"
    many.mkdir()
    first = sorted(src.glob("*.png"))[0]
    for i in range(400):
        os.link(first, many / f"{i:04d}.png")
    proc = subprocess.Popen(cli("edgepose-run") + [str(b), "--source", str(many), "--out", "-", "--quiet",
                                                   "--precision", "fp32"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # what `| head -n 1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipe" not in err, err
