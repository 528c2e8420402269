#!/usr/bin/env bash
# The reproduction on the embedded default: demo teacher (mpnet + head) -> demo student (MiniLM) on the demo task,
# k = 8, 16, 32, 64 x 5 seeds x KD / LWD with and without CoD, plus CE. Resumable: run it again after an interruption.
# On 2 CPU cores this takes many hours; on one GPU well under one. Extra arguments go to `python -m cod sweep`
# (e.g. `--epochs 40`), which makes a new sweep: give it a new OUT.
#
#   bench/reproduce/run.sh                 # the full run (nice -n 10, 2 threads)
#   OUT=runs/quick bench/reproduce/run.sh --k 8,16 --seeds 0,1 --methods kd,kd+cod --epochs 20 --test-limit 300
#
# Writes the sweep under $OUT (not committed) and the committed summary here: SUMMARY.md, summary.csv, results.csv,
# accuracy_vs_k.{html,json}, cod_gain.{html,json}.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-runs/reproduce}
PY=${PY:-.venv/bin/python}
THREADS=${THREADS:-2}
ARGS=(--task demo --k 8,16,32,64 --seeds 0,1,2,3,4 --methods kd,kd+cod,lwd,lwd+cod,ce --out "$OUT" --threads "$THREADS")
start=$(date +%s)
nice -n 10 "$PY" -m cod sweep "${ARGS[@]}" "$@"
end=$(date +%s)
"$PY" bench/reproduce/report.py "$OUT" --seconds $((end - start)) --command "python -m cod sweep ${ARGS[*]} $*"
