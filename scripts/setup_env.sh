#!/usr/bin/env bash
# Create .venv if missing and install the package with its pinned dependencies (idempotent:
# skipped when setup.cfg has not changed since the last successful install).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating virtual environment .venv"
    "$PY" -m venv .venv
fi
stamp=.venv/.mtl_adapters_installed
want=$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[setup] installing mtl_adapters and its dependencies (first time: a few minutes)"
    .venv/bin/python -m pip install -q --upgrade 'pip>=23' 2>&1 | grep -v 'is ignored' || true
    .venv/bin/python -m pip install -q -e '.[tests]' 2>&1 | grep -v 'is ignored' || true
    .venv/bin/python -c "import mtl_adapters, mmseg.evaluation, timm, albumentations" \
        || { echo "[setup] install failed" >&2; exit 1; }
    echo "$want" > "$stamp"
fi
export HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1
