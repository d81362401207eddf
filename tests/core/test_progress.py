"""The shared progress helper: tqdm when enabled, a silent stand-in otherwise."""
import builtins
import io

from edgepose.progress import is_terminal, progress


def test_disabled_bar_iterates_and_counts_silently(capsys):
    bar = progress(range(3), desc="x", enabled=False)
    assert list(bar) == [0, 1, 2]
    manual = progress(total=5, enabled=False)
    manual.update(2)
    manual.set_postfix(loss=1.0)
    manual.close()
    assert capsys.readouterr() == ("", "")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_enabled_bar_is_tqdm_on_a_terminal():
    term = _Terminal()
    assert list(progress([1, 2], desc="frames", unit="img", file=term)) == [1, 2]
    assert "frames" in term.getvalue() and "2/2" in term.getvalue()


def test_no_bar_when_stderr_is_a_file_or_pipe(capsys):
    # a log file of carriage returns helps nobody: the commands print plain lines of their own
    assert list(progress([1, 2], desc="frames", unit="img")) == [1, 2]
    assert capsys.readouterr().err == ""
    assert not is_terminal(io.StringIO()) and is_terminal(_Terminal())


def test_missing_tqdm_falls_back(monkeypatch):
    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name == "tqdm":
            raise ImportError("no tqdm here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    assert list(progress("ab", enabled=True)) == ["a", "b"]
