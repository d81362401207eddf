"""metrics.csv: the header grows with new quantities; resume drops rows past each stage's checkpoint."""
import csv

from edgepose.train.metrics_log import MetricsLog, flatten


def rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_header_grows_and_keeps_leading_columns(tmp_path):
    log = MetricsLog(tmp_path / "m.csv")
    log.append({"stage": "stage1", "epoch": 1, "loss": 2.0, "sp": 0.1, "Lp": 1.0})
    log.append({"stage": "stage2", "epoch": 1, "loss": 1.0, "reproj": 0.5})
    log.write()
    got = rows(tmp_path / "m.csv")
    assert list(got[0])[:4] == ["stage", "epoch", "loss", "sp"]
    assert got[0]["reproj"] == "" and got[1]["reproj"] == "0.5" and got[1]["sp"] == ""


def test_keep_done_drops_rows_after_each_stages_checkpoint(tmp_path):
    log = MetricsLog(tmp_path / "m.csv")
    for st, ep in [("stage1", 1), ("stage1", 2), ("stage1", 3), ("stage2", 1), ("qat", 1), ("qat", 2)]:
        log.append({"stage": st, "epoch": ep})
    log.write()
    again = MetricsLog(tmp_path / "m.csv").load()
    again.keep_done({"stage1": 2})  # resuming stage 1 after its epoch 2: later stages go too
    assert [(r["stage"], int(r["epoch"])) for r in again.rows] == [("stage1", 1), ("stage1", 2)]
    qat = MetricsLog(tmp_path / "m.csv").load().keep_done({"stage1": 9, "stage2": 1, "qat": 1})
    assert [(r["stage"], int(r["epoch"])) for r in qat.rows] == [("stage1", 1), ("stage1", 2), ("stage1", 3),
                                                                ("stage2", 1), ("qat", 1)]


def test_flatten_prefixes_keys():
    assert flatten("baseline.mean_pose", {"median_position_m": 1.0}) == {"baseline.mean_pose.median_position_m": 1.0}
