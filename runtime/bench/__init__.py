"""edgepose.runtime.bench: accuracy vs latency for every backend x precision of a bundle.

``edgepose-bench BUNDLE --data DATASET --out REPORT`` (see :mod:`.cli`), in Python
``bench_bundle(BenchConfig(...)) -> BenchResult`` (:mod:`.api`, :mod:`.config`). One row per backend x
precision; a failed row records its reason and never stops the run. The package imports only
numpy and edgepose at import time; runners, matplotlib and the Jetson tools are loaded lazily.

Modules, one job each: :mod:`.timing` (warm-up by time, percentiles), :mod:`.metrics`
(accuracy, drift, uncertainty calibration), :mod:`.tegrastats` (Jetson power),
:mod:`.sysinfo` (device and versions), :mod:`.rows` (which rows to run), :mod:`.runner`
(the row loop), :mod:`.gate` (CI bounds), :mod:`.report` (json/csv/md), :mod:`.plots` (PNGs),
:mod:`.config` (the settings), :mod:`.api` (one run: data, rows, report), :mod:`.cli` (flags
in, result printed).
"""
