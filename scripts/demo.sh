#!/usr/bin/env bash
# The main job on the embedded default: set up (if needed), generate the synthetic multi-task
# scenes, evaluate an untrained model, train S-D-N-E on CPU, evaluate, write pictures.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
export HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1
exec .venv/bin/python tools/demo.py "$@"
