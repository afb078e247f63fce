#!/usr/bin/env bash
# Every GPU result regdakit lacks, in one command of at most 8 minutes on one NVIDIA GPU (issue 14, item 10).
#
#     bash benchmarks/gpu_check.sh
#
# Run it on a machine with one CUDA GPU (H100/H200) whose Python has torch; regdakit need not be installed (the
# repository root goes on PYTHONPATH) and no network is used. PYTHON=... picks the interpreter (default: python,
# else python3). Three stages, each under its own `timeout`, write into benchmarks/results/:
#
#   1. step_time_gpu.json     benchmarks/step_time.py at the paper's size (ResNet-101, 256 px, batch 32), fp32 and
#                             bf16 autocast + channels_last: ERM, RegDA fused and plain (three-pass) steps, seconds,
#                             images/s, peak memory, FLOPs                                         (limit 100 s)
#   2. gpu_regda_short.json   a short RegDA run (`python -m regdakit train --preset=gpu-student`, 200 ERM +
#                             100 RegDA iterations): images/s of the steps and of the whole loop (to check
#                             gpu_preset_cost.json's estimate), the final metrics, the exact command (limit 180 s)
#   3. notebook04_gpu.json    notebook 04's GPU preset (REGDAKIT_PRESET=gpu-student) with REGDAKIT_MAX_ITERATIONS=20:
#                             per cell seconds, printed text and figure count (the executed copy is not kept)
#                                                                                                  (limit 140 s)
#
# and prints each stage's status and seconds at the end. A stage that fails or times out does not stop the next.
# The limits (plus 30 s of preflight, a first torch import on a cold disk, and 5 s of grace per command) add up
# to 470 s < 8 minutes.
#
# CPU toy mode: `bash benchmarks/gpu_check.sh --cpu-smoke --out DIR` (or GPU_CHECK_DEVICE=cpu GPU_CHECK_OUT=DIR)
# runs the same stages on the CPU at a toy size (tiny backbone, 64 px, 2 iterations) into DIR, never into
# benchmarks/results/ (tests/test_gpu_check.py).
#
# Exit status: 0 every stage wrote its result; 1 a stage (or the preflight) failed or timed out; 2 usage;
# 3 no CUDA device visible (or no torch).

set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
OUT="${GPU_CHECK_OUT:-}"
BUDGET=480

usage() { sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --cpu-smoke) DEVICE=cpu ;;
        --out) [ $# -ge 2 ] || usage; OUT="$2"; shift ;;
        --out=*) OUT="${1#--out=}" ;;
        -h|--help) usage 0 ;;
        *) echo "gpu_check.sh: unknown argument $1" >&2; usage ;;
    esac
    shift
done
case "$DEVICE" in
    cuda|cpu) ;;
    *) echo "gpu_check.sh: GPU_CHECK_DEVICE must be cuda or cpu, got '$DEVICE'" >&2; exit 2 ;;
esac

if [ -z "${PYTHON:-}" ]; then
    if command -v python >/dev/null 2>&1; then PYTHON=python; else PYTHON=python3; fi
fi
# Absolute: notebook kernels run in notebooks/ and inherit it.
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

if [ "$DEVICE" = cpu ]; then
    if [ -z "$OUT" ]; then
        echo "gpu_check.sh: the CPU toy mode needs --out DIR (its results must not land in benchmarks/results)" >&2
        exit 2
    fi
    mkdir -p "$OUT" || exit 2
    OUT="$(cd "$OUT" && pwd)"
    if [ "$OUT" = "$ROOT/benchmarks/results" ]; then
        echo "gpu_check.sh: the CPU toy mode does not write into benchmarks/results" >&2
        exit 2
    fi
    export CUDA_VISIBLE_DEVICES=""             # CPU everywhere, notebook kernel included
    export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 # a toy size gains nothing from threads on a shared machine
    SIZE=(--backbone tiny --size 64 --batch 4 --repeats 2)
else
    OUT="${OUT:-benchmarks/results}"   # relative: the results record their command, with no path of this machine
    mkdir -p "$OUT" || exit 2
    SIZE=(--backbone resnet101 --size 256 --batch 32)
fi

TIMES="$(mktemp)"
trap 'rm -f "$TIMES"' EXIT
FAILED=0

# stage NAME LIMIT COMMAND...: run COMMAND under `timeout LIMIT`, record status and seconds.
stage() {
    local name="$1" limit="$2"
    shift 2
    echo
    echo "=== $name (limit ${limit} s): $*"
    local start end status rc
    start=$(date +%s.%N)
    timeout --kill-after=5 "$limit" "$@"
    rc=$?
    end=$(date +%s.%N)
    case $rc in
        0) status=ok ;;
        124|137) status=timeout; FAILED=1; echo "=== $name: stopped after its limit of ${limit} s" >&2 ;;
        *) status="failed($rc)"; FAILED=1; echo "=== $name: exit status $rc" >&2 ;;
    esac
    echo "$name $status $(awk "BEGIN {print $end - $start}") $limit" >>"$TIMES"
}

echo "=== preflight"
timeout --kill-after=5 30 "$PYTHON" benchmarks/gpu_check.py preflight --device "$DEVICE"
rc=$?
case $rc in
    0) ;;
    3) exit 3 ;;
    124|137) echo "gpu_check.sh: the preflight (importing torch) took more than 30 s; nothing was run" >&2; exit 1 ;;
    *) echo "gpu_check.sh: the preflight failed with exit status $rc; nothing was run" >&2; exit 1 ;;
esac

stage step_time 100 "$PYTHON" benchmarks/step_time.py --device "$DEVICE" "${SIZE[@]}" \
    --modes fp32 bf16-cl --name step_time_gpu --out-dir "$OUT"
stage regda_short 180 "$PYTHON" benchmarks/gpu_check.py regda-short --device "$DEVICE" --out-dir "$OUT"
stage notebook04 140 "$PYTHON" benchmarks/gpu_check.py notebook04 --device "$DEVICE" --out-dir "$OUT"

"$PYTHON" benchmarks/gpu_check.py summary --times "$TIMES" --budget "$BUDGET"
echo "results in $OUT"
if [ $FAILED -ne 0 ]; then
    echo "gpu_check.sh: at least one stage failed (see above); its result is missing or stale" >&2
    exit 1
fi
