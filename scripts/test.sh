#!/usr/bin/env bash
# The test command: set up (if needed), then run the whole suite on all cores.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
export HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1 OMP_NUM_THREADS=1
exec .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --durations=15 "$@" tests
