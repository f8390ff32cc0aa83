#!/usr/bin/env bash
# Builds the LightZero peer venv (PyPI only, CPU torch).
#
#   bash benchmarks/peers/lightzero/install.sh
#
# LIGHTZERO_VENV  where the venv goes (default: <repo>/runs/peers/lightzero-venv; runs/ is
#                 gitignored)
# PYTHON          the interpreter that creates it (default: python3.11; the LightZero 0.2.0 wheel
#                 with the compiled C++ MCTS trees is cp311)
#
# LightZero and DI-engine are installed with --no-deps, then their requirements (requirements.txt
# beside this script) under constraints.txt, which pins torch==2.13.0 (the CPU wheel; pip must
# never resolve another torch, that would pull the CUDA stack), setuptools>=77,<81, numpy<2,
# gym==0.25.1 and gymnasium==0.28.0. Idempotent: a second run re-checks and changes nothing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
VENV="${LIGHTZERO_VENV:-$ROOT/runs/peers/lightzero-venv}"
PYTHON="${PYTHON:-python3.11}"
LIGHTZERO_VERSION=0.2.0
DI_ENGINE_VERSION=0.5.3
CONSTRAINTS="$HERE/constraints.txt"

start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV with $($PYTHON --version)"
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
# (The sed drops this machine's pip warnings about its absent local index folders.)
pip_install() {
  "$PY" -m pip install --disable-pip-version-check -q -c "$CONSTRAINTS" "$@" 2>&1 |
    sed '/is ignored: it is neither a file nor a directory/d'
}

pip_install "setuptools>=77,<81" wheel
# torch first, alone, and only once pip says it would take a CPU build (a local +cpu wheel):
# PyPI's own torch==2.13.0 is the CUDA build, whose dependencies are gigabytes.
report="$(mktemp)"
pip_install --dry-run --ignore-installed --no-deps --report "$report" torch==2.13.0
torch_pick="$("$PY" -c 'import json, sys; r = json.load(open(sys.argv[1]))
print(" ".join(i["metadata"]["version"] for i in r["install"]))' "$report")"
rm -f "$report"
case "$torch_pick" in
  *+cpu) ;;
  *) echo "error: pip would install torch $torch_pick, not a +cpu build; stopping" >&2; exit 1 ;;
esac
pip_install torch==2.13.0
pip_install --no-deps "LightZero==$LIGHTZERO_VERSION" "DI-engine==$DI_ENGINE_VERSION"
pip_install -r "$HERE/requirements.txt"

# No CUDA wheels may have slipped in.
if "$PY" -m pip list --format=freeze 2>/dev/null | grep -qiE '^nvidia-|^triton=='; then
  echo "error: CUDA packages were installed into $VENV:" >&2
  "$PY" -m pip list --format=freeze | grep -iE '^nvidia-|^triton==' >&2
  exit 1
fi

# pip check lists the pins that disagree with the packages' own metadata (DI-engine wants
# setuptools<=66.1.1, the left-out optional requirements); informative only.
"$PY" -m pip check 2>&1 | sed 's/^/pip check: /' || true

cd "$ROOT"
PYTHONPATH="$ROOT/src" "$PY" - <<'EOF'
import torch

import lzero
from lzero.entry import train_muzero  # noqa: F401
from lzero.mcts.ctree.ctree_muzero import mz_tree  # noqa: F401
from lzero.mcts.ctree.ctree_efficientzero import ez_tree  # noqa: F401
from worldmodels.planners import muzero_search  # noqa: F401
import zoo.classic_control.cartpole.config.cartpole_muzero_config  # noqa: F401
import zoo.classic_control.cartpole.config.cartpole_efficientzero_config  # noqa: F401
import zoo.classic_control.cartpole.envs.cartpole_lightzero_env  # noqa: F401

assert torch.__version__.startswith("2.13.0"), torch.__version__
print(f"ok: torch {torch.__version__}, lzero at {lzero.__path__[0]}, ctree mz_tree/ez_tree, "
      "train_muzero, CartPole configs, worldmodels.planners (PYTHONPATH=src)")
EOF
echo "venv: $VENV ($(( $(date +%s) - start )) s)"
