"""edgepose.outputs: outputs resolved once (links, '..') and refused when they are inputs;
ownership records. Real files, folders and links in a temporary folder."""
from __future__ import annotations

import os

import pytest

from edgepose.errors import ConfigError
from edgepose.outputs import OWNER_FILE, check_outputs, owned_files, read_owner, resolved, write_owner


def test_outputs_inside_inputs_are_refused_however_they_are_spelled(tmp_path):
    data = tmp_path / "data"
    (data / "seq").mkdir(parents=True)
    os.symlink(data, tmp_path / "alias")
    for out in (data, data / "poses.csv", data / "seq" / "new" / "x.png", tmp_path / "alias" / "p.csv",
                tmp_path / "other" / ".." / "data" / "p.csv"):
        with pytest.raises(ConfigError, match="--csv .* overwrite what this command reads"):
            check_outputs({"--csv": out}, {"DATA": data})
    ok = check_outputs({"--csv": tmp_path / "poses.csv", "--out": "-"}, {"DATA": data, "--source": "0"})
    assert ok == {"--csv": (tmp_path / "poses.csv").resolve()}


def test_an_input_given_through_a_link_is_still_an_input(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    with pytest.raises(ConfigError, match="overwrite"):
        check_outputs({"--out": tmp_path / "real" / "p.jsonl"}, {"--source": tmp_path / "link"})


def test_two_outputs_naming_one_file_are_refused(tmp_path):
    os.symlink(tmp_path / "a.csv", tmp_path / "b.csv")  # dangling: both name a.csv once written
    with pytest.raises(ConfigError, match="--csv .* and --out name the same file"):
        check_outputs({"--out": tmp_path / "a.csv", "--csv": tmp_path / "b.csv"}, {})


def test_writing_into_the_input_is_allowed_only_where_it_is_the_job(tmp_path):
    (tmp_path / "b").mkdir()
    check_outputs({"--out": tmp_path / "b"}, {"BUNDLE": tmp_path / "b"}, same_as_input_ok={"--out": "BUNDLE"})
    with pytest.raises(ConfigError):
        check_outputs({"--out": tmp_path / "b" / "sub"}, {"BUNDLE": tmp_path / "b"}, same_as_input_ok={"--out": "BUNDLE"})


@pytest.mark.parametrize("name, words", [("x" * 300, "file systems allow 255"), ("a\x00b", "NUL")])
def test_impossible_names_are_messages(tmp_path, name, words):
    with pytest.raises(ConfigError, match=words):
        resolved(tmp_path / name, "--out")


def test_a_link_loop_is_a_message(tmp_path):
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    with pytest.raises(ConfigError, match="symbolic-link loop"):
        resolved(tmp_path / "loop", "DATA")
    with pytest.raises(ConfigError, match="symbolic-link loop"):
        resolved(tmp_path / "loop" / "x.csv", "--csv")


def test_ownership_record_names_the_tool_and_its_files(tmp_path):
    assert read_owner(tmp_path) is None and owned_files(tmp_path, "edgepose-synth") is None
    (tmp_path / "a.png").write_bytes(b"1")
    write_owner(tmp_path, "edgepose-synth", ["a.png", "gone.png", "../escape", "/abs"])
    assert owned_files(tmp_path, "edgepose-synth") == ["a.png"]  # present, inside, no link
    assert owned_files(tmp_path, "edgepose-export") is None
    (tmp_path / OWNER_FILE).write_text("[1, 2]")
    assert read_owner(tmp_path) is None
