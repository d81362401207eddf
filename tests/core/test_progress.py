"""The shared progress helper: tqdm when enabled, a silent stand-in otherwise."""
import builtins

from edgepose.progress import progress


def test_disabled_bar_iterates_and_counts_silently(capsys):
    bar = progress(range(3), desc="x", enabled=False)
    assert list(bar) == [0, 1, 2]
    manual = progress(total=5, enabled=False)
    manual.update(2)
    manual.set_postfix(loss=1.0)
    manual.close()
    assert capsys.readouterr() == ("", "")


def test_enabled_bar_is_tqdm_on_stderr(capsys):
    assert list(progress([1, 2], desc="frames", unit="img")) == [1, 2]
    err = capsys.readouterr().err
    assert "frames" in err and "2/2" in err


def test_missing_tqdm_falls_back(monkeypatch):
    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name == "tqdm":
            raise ImportError("no tqdm here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    assert list(progress("ab", enabled=True)) == ["a", "b"]
