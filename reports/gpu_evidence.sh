#!/usr/bin/env bash
# The GPU evidence on a lent CUDA machine, one part per call so that each fits a 10-minute device command:
#   bash reports/gpu_evidence.sh checks [SUITE FLAGS]        then controls,transfer; then fr,speedup; then bench
# It runs from the repository root with the machine's own python3 (torch, sympy, jinja2, click and matplotlib
# there; nothing installed) and writes under $OUT (default out/): the suite's reports in suite_gpu/ with their
# commands, and a log per call. The text is the English of CPython's documentation topics (pydoc_data), written
# out first, so the same Python gives the same bytes. SUITE FLAGS go to `suite gpu`, e.g. --max-seeds 12.
set -euo pipefail
cd "$(dirname "$0")/.."
part=${1:?usage: bash reports/gpu_evidence.sh checks|controls,transfer|fr,speedup|bench [SUITE FLAGS]}
shift
out=${OUT:-out}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
text=$out/pydoc_topics.txt
python3 -c "import sys, pydoc_data.topics as t; open(sys.argv[1], 'w').write('\n\n'.join(t.topics[k] for k in sorted(t.topics)))" "$text"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu_$part.txt" || true
if [ "$part" = bench ]; then
  python3 bench/bench_step.py --device cuda --width 1024 --depth 8 --ratio 4 --batch 16 --seq 512 "$@" 2>&1 \
    | tee "$out/bench_step_cuda.txt"
else
  python3 -m mup_derive suite gpu --only "$part" --text "$text" --out "$out/suite_gpu" "$@" 2>&1 \
    | tee "$out/suite_gpu_${part//,/-}.log"
fi
