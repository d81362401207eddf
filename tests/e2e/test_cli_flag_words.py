"""One spelling, one meaning: every CLI's real parser is read, and a flag spelled the same way in
two commands must have the same dest, action, type and choices, and metavar. The documented
exceptions (edgepose.cli.arg_groups' docstring): --precision and --backend are ONE value where a
command runs one model and a comma LIST where it handles several; --out names each command's own
kind of output."""
from __future__ import annotations

import argparse

import pytest

from edgepose.cli import arg_groups

#: flag -> why it may differ between commands (each said in arg_groups' docstring)
LIST_OR_ONE = {"--precision", "--backend"}
OWN_OUTPUT = {"--out"}


def parsers():
    from edgepose.cli.inspect import build_parser as inspect_parser
    from edgepose.cli.synth import build_parser as synth_parser
    from edgepose.export.cli import build_parser as export_parser
    from edgepose.runtime.bench.cli import build_parser as bench_parser
    from edgepose.runtime.cli import build_parser as run_parser
    from edgepose.runtime.ros.node import build_parser as node_parser
    from edgepose.train.cli import build_parser as train_parser

    return {"edgepose-run": run_parser(), "edgepose-bench": bench_parser(), "edgepose-export": export_parser(),
            "edgepose-train": train_parser(), "edgepose-ros2": node_parser(), "edgepose-synth": synth_parser(),
            "edgepose-inspect": inspect_parser()}


def words(parser: argparse.ArgumentParser) -> dict:
    """``{spelling: (dest, action kind, type, choices, metavar)}``; positionals by their dest."""
    out = {}
    for a in parser._actions:
        if isinstance(a, argparse._HelpAction):
            continue
        key = (type(a).__name__, a.type, tuple(a.choices) if a.choices else None, a.metavar)
        for spelling in a.option_strings or [a.dest]:
            out[spelling] = (a.dest,) + key
    return out


def drift(table: dict) -> list:
    """``(spelling, commands, what differs)`` for every flag spelled alike that does not agree."""
    seen: dict = {}
    for prog, parser in table.items():
        for spelling, word in words(parser).items():
            seen.setdefault(spelling, {})[prog] = word
    found = []
    for spelling, by_prog in seen.items():
        if len(by_prog) < 2 or spelling in OWN_OUTPUT:
            continue
        groups = {}
        for prog, word in by_prog.items():
            if spelling in LIST_OR_ONE:
                form = "list" if word[4] == "LIST" else "one"
                groups.setdefault(form, {})[prog] = word
                if word[0] != spelling.lstrip("-").replace("-", "_"):
                    found.append((spelling, prog, f"dest {word[0]}"))
            else:
                groups.setdefault("all", {})[prog] = word
        for members in groups.values():
            if len(set(members.values())) > 1:
                found.append((spelling, sorted(members), sorted(set(members.values()), key=str)))
    return found


@pytest.fixture(scope="module")
def table():
    return parsers()


def test_a_flag_spelled_alike_means_the_same_in_every_command(table):
    assert drift(table) == []


def test_the_shared_words_are_really_shared(table):
    w = {prog: words(p) for prog, p in table.items()}
    shared = {s for s in set().union(*w.values()) if sum(s in x for x in w.values()) >= 2}
    # the concepts arg_groups defines once, each used by two commands or more
    assert {"--precision", "--backend", "--batch", "--threads", "--strict", "--cuda-graph", "--filter",
            "--camera-graph", "--frame-id", "--camera-to-base", "--pose-topic", "--format", "--split-policy",
            "--split", "--max-frames", "bundle"} <= shared
    assert w["edgepose-bench"]["--precisions"] == w["edgepose-bench"]["--precision"]  # the old spelling, an alias
    assert w["edgepose-bench"]["--backends"] == w["edgepose-bench"]["--backend"]
    for prog in ("edgepose-export", "edgepose-bench"):  # --batch: one meaning, said in both helps
        help_text = next(a.help for a in table[prog]._actions if "--batch" in a.option_strings)
        assert "frames per inference" in help_text and "--batch-size" in help_text
    assert "--batch" not in w["edgepose-train"] and "--batch-size" in w["edgepose-train"]


def test_the_check_catches_a_planted_drift(table):
    bad = argparse.ArgumentParser()
    bad.add_argument("--threads", type=int, default=0)  # another type than arg_groups.add_threads'
    bad.add_argument("--precision", "--precisions", dest="precisions", metavar="LIST")  # another dest
    arg_groups.add_batch(bad)
    found = drift({**table, "planted": bad})
    assert {f[0] for f in found} == {"--threads", "--precision", "--precisions"}  # --batch agrees
