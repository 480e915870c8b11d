#!/usr/bin/env bash
# The relay side by side with Postfix 3.7 as a plain relay, with the shared instrument
# (../shared/perf: bench.py, setup-postfix.sh, report.py), the way its README says:
#   smtp-source -> [Postfix on 127.0.0.1:2525 | relay serve on 127.0.0.1:2527] -> smtp-sink 127.0.0.1:2600
# Everything listens on 127.0.0.1; nothing leaves the machine. Run as root (Postfix is set up and
# started), on an otherwise idle machine; quote the ratios of one run, not absolute times.
#
#   bench/compare.sh                       # 2 KB, 100 KB and 5 MB with 20 sessions, 3 repetitions
#   CASES=2048:20 REPS=1 bench/compare.sh  # one case, once
#
# PERF names the instrument's folder (default ../shared/perf); OUT the JSON lines (default
# /tmp/relay-compare.jsonl); SYSTEMS what runs (default sink,postfix,project).
set -euo pipefail
cd "$(dirname "$0")/.."
PERF=${PERF:-../shared/perf}
OUT=${OUT:-/tmp/relay-compare.jsonl}
CASES=${CASES:-2048:20,102400:20,5242880:20}
REPS=${REPS:-3}
SYSTEMS=${SYSTEMS:-sink,postfix,project}
[ -f "$PERF/bench.py" ] || { echo "compare.sh: no benchmark instrument in $PERF (set PERF)" >&2; exit 2; }
[ -x .venv/bin/relay ] || { python3 -m venv .venv && .venv/bin/pip install -q .; }
if ! command -v smtp-source >/dev/null 2>&1 || ! ss -ltn 2>/dev/null | grep -q '127.0.0.1:2525 '; then
  bash "$PERF/setup-postfix.sh" --no-py-venv
fi
rm -f "$OUT"
PATH="$PWD/.venv/bin:$PATH" python3 "$PERF/bench.py" --systems "$SYSTEMS" --cases "$CASES" --reps "$REPS" --out "$OUT" \
  --project-cmd "$PWD/bench/relay-for-compare"
python3 "$PERF/report.py" "$OUT"
