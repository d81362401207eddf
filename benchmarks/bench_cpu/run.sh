#!/usr/bin/env bash
# edgepose-bench on this CPU: a contract-conforming ONNX bundle (fp32 / fp16 / int8 Q/DQ,
# random weights, 224x224 uint8 NHWC input, 3 strided 3x3 convs x 32 channels; made by
# tests/synthetic_bundles.py, no torch) on REAL frames: the Middlebury dino set (640x480 PNG).
# The accuracy columns are meaningless (random weights); latency, drift and the machinery are not.
# For the trained model use the demo bundle instead:  make demo  (runs edgepose-bench itself).
#
# usage: benchmarks/bench_cpu/run.sh [OUT]      (default benchmarks/bench_cpu/results)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PY="${PY:-$REPO/.venv/bin/python}"
OUT="${1:-$HERE/results}"
DATA="$(cd "${DATA:-$REPO/../shared/data/middlebury_dino/dino}" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
PYTHONPATH="$REPO/tests${PYTHONPATH:+:$PYTHONPATH}" "$PY" - "$WORK/bundle" <<'PYEOF'  # the test-bundle maker lives in tests/
import sys
from synthetic_bundles import make_synthetic_bundle
make_synthetic_bundle(sys.argv[1], size=(224, 224), channels=32, depth=3, batch_max=8)
PYEOF
uptime > "$WORK/load_before"
rc=0
"$REPO/.venv/bin/edgepose-bench" "$WORK/bundle" --data "$DATA" --max-frames 60 \
    --warmup-s 2 --iters 300 --threads 2 --quiet --gate max-drift-m=0.5,max-drift-deg=5 --out "$OUT" || rc=$?
# the bundle lives in a temporary folder: keep the report's paths stable for diffs
sed -i "s#$WORK/bundle#<synthetic-224-conv3x32>#g" "$OUT/report.md" "$OUT/report.json"
{ echo; echo "Load average before / after the run (2-core machine shared with other jobs):"; echo;
  echo "    $(cat "$WORK/load_before")"; echo "    $(uptime)"; echo;
  echo "edgepose-bench exit code: $rc (3 = the gate caught a row)"; } >> "$OUT/report.md"
# exit code 3 is the gate doing its job on the random-weight int8 graph; anything else is a failure
[ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || exit "$rc"
