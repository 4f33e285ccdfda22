#!/usr/bin/env bash
# Set up the labs on this machine and run what you asked for:
#   ./setup.sh lab    install, then open JupyterLab in your workspace (~/srelab-work)
#   ./setup.sh test   install the test tools, then run the test suite
# Where no NVIDIA driver is installed, torch comes from PyTorch's CPU index first, so pip never
# pulls the multi-GB CUDA build (and its nvidia-* wheels) that such a machine cannot use.
# PYTHON=python3.12 ./setup.sh lab picks the interpreter (a venv's python works too).
set -euo pipefail
cd "$(dirname "$0")"
what=${1:-lab}
shift || true
PY=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1

driver() { [ -e /dev/nvidiactl ] || [ -e /proc/driver/nvidia/version ] || [ -e /dev/dxg ]; }

if ! "$PY" -c "import torch" 2>/dev/null; then
  if driver; then
    echo "NVIDIA driver found: installing torch with CUDA"
    "$PY" -m pip install torch
  else
    echo "no NVIDIA driver: installing the CPU build of torch (GPU labs run labelled stand-ins)"
    "$PY" -m pip install torch --index-url https://download.pytorch.org/whl/cpu
  fi
fi

case "$what" in
  lab)
    "$PY" -m pip install -e ".[lab]"
    exec "$PY" -m labsupport.cli lab "$@"
    ;;
  test)
    "$PY" -m pip install -e ".[dev]"
    exec "$PY" -m pytest -q "$@"
    ;;
  *)
    echo "usage: ./setup.sh lab|test" >&2
    exit 2
    ;;
esac
