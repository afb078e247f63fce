#!/usr/bin/env bash
# Run the unit tests and doctests on the oldest Python and torch that pyproject.toml admits.
#
#   bash benchmarks/compat_minimum.sh [PYTHON] [TORCH_SPEC]      (defaults: python3.10 torch==2.4.1)
#
# Builds a throw-away virtual environment under ${COMPAT_VENV:-/tmp/regdakit-compat}, installs TORCH_SPEC
# first (PyPI's build: several GB with its CUDA libraries; the tests run on the CPU), then the package with
# its notebooks and dev extras (tests/test_gpu_check.py executes notebook 04), runs `pytest regdakit tests`
# and writes benchmarks/results/compat_minimum.json: interpreter, torch, the pytest summary line and the
# command. Left out: the browser test, the packaging test (it builds wheels with the project's own
# interpreter) and tests/test_install.py, which checks what `make` would install with the machine's
# default python3: resolved from a Python-3.10 venv on a machine whose only torch index is PyPI, the CPU
# plan finds no CPU build of torch 2.13 and reports the CUDA one, which says nothing about 3.10 support.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${1:-python3.10}
TORCH_SPEC=${2:-torch==2.4.1}
VENV=${COMPAT_VENV:-/tmp/regdakit-compat}
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC"
"$VENV/bin/python" -m pip install --quiet -e '.[notebooks,dev]'
LOG=$(mktemp)
set +e
OMP_NUM_THREADS=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider regdakit tests \
    --ignore=tests/test_browser.py --ignore=tests/test_packaging.py --ignore=tests/test_install.py 2>&1 | tee "$LOG"
STATUS=${PIPESTATUS[0]}
set -e
"$VENV/bin/python" - "$LOG" "$STATUS" "$PY" "$TORCH_SPEC" <<'PY'
import json, os, platform, subprocess, sys
import torch, numpy
log, status, py, spec = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
lines = [l for l in open(log).read().splitlines() if l.strip()]
summary = next((l.strip("= ") for l in reversed(lines) if " passed" in l or " failed" in l), lines[-1] if lines else "")
failed = [l.split(" ", 1)[1].split(" - ")[0] for l in lines if l.startswith("FAILED ")]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
result = {
    "command": f"bash benchmarks/compat_minimum.sh {os.path.basename(py)} {spec}",  # no machine paths
    "commit": commit,
    "python": platform.python_version(),
    "torch": torch.__version__,
    "numpy": numpy.__version__,
    "pytest_exit_status": status,
    "summary": summary,
    "failed": failed,
}
with open("benchmarks/results/compat_minimum.json", "w") as fh:
    json.dump(result, fh, indent=2)
    fh.write("\n")
print(json.dumps(result, indent=2))
PY
exit "$STATUS"
