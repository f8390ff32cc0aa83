#!/usr/bin/env bash
# Builds the two DreamerV3 peer venvs (PyPI only, CPU torch and CPU jax).
#
#   bash benchmarks/peers/dreamerv3/install.sh DREAMERV3_SRC
#
# DREAMERV3_SRC       a source tree of danijar/dreamerv3 (measured: commit
#                     e3f02248693a79dc8b0ebd62c93683888ddaccfe), e.g.
#                       git clone https://github.com/danijar/dreamerv3 runs/peers/dreamerv3-src
#                       git -C runs/peers/dreamerv3-src checkout e3f02248693a79dc8b0ebd62c93683888ddaccfe
#                     The JAX venv gets a .pth file pointing at it (it is not a pip package), so
#                     keep it where it is. A tree that is not a git checkout (e.g. from
#                     `git archive`) may name its commit in a one-line file DREAMERV3_SRC/COMMIT.
# SHEEPRL_VENV        default <repo>/runs/peers/sheeprl-venv (runs/ is gitignored)
# DREAMERV3_JAX_VENV  default <repo>/runs/peers/dreamerv3-jax-venv
# PYTHON              the interpreter that creates them (default: python3.11, as the project's venv)
#
# sheeprl venv: torch==2.13.0 first, alone, once pip says it would take the local +cpu wheel
# (PyPI's torch 2.13.0 is the CUDA build, whose dependencies are gigabytes), then sheeprl 0.8.4
# with its dependencies under sheeprl-constraints.txt (torch==2.13.0, gymnasium==1.4.0 and the
# exact versions of the rest). JAX venv: jax-requirements.txt (the snapshot's requirements.txt for
# a CPU run) under jax-constraints.txt (jax and jaxlib 0.4.33, numpy 1.26.4 for its numpy<2, and
# the exact versions of the rest).
# Both fail if any nvidia-* package (or triton, jax-cuda plugins) got in, and end with an import
# check. Idempotent: a second run re-checks and changes nothing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
SHEEPRL_VENV="${SHEEPRL_VENV:-$ROOT/runs/peers/sheeprl-venv}"
JAX_VENV="${DREAMERV3_JAX_VENV:-$ROOT/runs/peers/dreamerv3-jax-venv}"
SHEEPRL_VERSION=0.8.4
DREAMERV3_COMMIT=e3f02248693a79dc8b0ebd62c93683888ddaccfe

SRC="${1:-}"
if [ -z "$SRC" ] || [ ! -f "$SRC/dreamerv3/main.py" ] || [ ! -f "$SRC/embodied/__init__.py" ]; then
  echo "error: ${SRC:-no path given}: not a danijar/dreamerv3 source tree; usage: bash benchmarks/peers/dreamerv3/install.sh DREAMERV3_SRC (git clone https://github.com/danijar/dreamerv3 DREAMERV3_SRC && git -C DREAMERV3_SRC checkout $DREAMERV3_COMMIT)" >&2
  exit 2
fi
SRC="$(cd "$SRC" && pwd)"
if [ "$(git -C "$SRC" rev-parse --show-toplevel 2>/dev/null)" = "$SRC" ]; then
  commit="$(git -C "$SRC" rev-parse HEAD)"
elif [ -s "$SRC/COMMIT" ]; then
  commit="$(head -n 1 "$SRC/COMMIT")"  # a tree from `git archive`: its commit, written beside it
else
  commit="unknown (not a git checkout, no COMMIT file; the measured commit is $DREAMERV3_COMMIT)"
fi
[ "${commit:0:40}" = "$DREAMERV3_COMMIT" ] || [ "${commit:0:7}" = "unknown" ] ||
  echo "warning: $SRC is at commit $commit; the measured one is $DREAMERV3_COMMIT" >&2

start=$(date +%s)

make_venv() {
  if [ ! -x "$1/bin/python" ]; then
    echo "creating $1 with $($PYTHON --version)"
    mkdir -p "$(dirname "$1")"
    "$PYTHON" -m venv "$1"
  fi
}

# pip_install VENV CONSTRAINTS ARGS... (the sed drops this machine's pip warnings about its
# absent local index folders)
pip_install() {
  local venv="$1" constraints="$2"
  shift 2
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -c "$constraints" "$@" 2>&1 |
    sed '/is ignored: it is neither a file nor a directory/d'
  return "${PIPESTATUS[0]}"
}

no_cuda() {
  if "$1/bin/python" -m pip list --format=freeze 2>/dev/null |
    grep -qiE '^nvidia-|^triton==|^jax-cuda|^jax_cuda'; then
    echo "error: CUDA packages were installed into $1:" >&2
    "$1/bin/python" -m pip list --format=freeze | grep -iE '^nvidia-|^triton==|^jax-cuda|^jax_cuda' >&2
    exit 1
  fi
}

# --- sheeprl ------------------------------------------------------------------------------------
C="$HERE/sheeprl-constraints.txt"
make_venv "$SHEEPRL_VENV"
report="$(mktemp)"
pip_install "$SHEEPRL_VENV" "$C" --dry-run --ignore-installed --no-deps --report "$report" torch==2.13.0
torch_pick="$("$SHEEPRL_VENV/bin/python" -c 'import json, sys; r = json.load(open(sys.argv[1]))
print(" ".join(i["metadata"]["version"] for i in r["install"]))' "$report")"
rm -f "$report"
case "$torch_pick" in
  *+cpu) ;;
  *) echo "error: pip would install torch $torch_pick, not a +cpu build; stopping" >&2; exit 1 ;;
esac
pip_install "$SHEEPRL_VENV" "$C" torch==2.13.0
pip_install "$SHEEPRL_VENV" "$C" "sheeprl==$SHEEPRL_VERSION"
no_cuda "$SHEEPRL_VENV"
"$SHEEPRL_VENV/bin/python" -m pip check 2>&1 | sed 's/^/pip check (sheeprl): /' || true
"$SHEEPRL_VENV/bin/python" - <<'EOF'
from importlib.metadata import version

import gymnasium
import torch

import sheeprl
from sheeprl.algos.dreamer_v3 import dreamer_v3  # noqa: F401

assert torch.__version__.startswith("2.13.0"), torch.__version__
gymnasium.make("CartPole-v1").reset(seed=0)
print(f"ok: sheeprl {version('sheeprl')} at {sheeprl.__path__[0]}, torch {torch.__version__}, "
      f"lightning {version('lightning')}, gymnasium {gymnasium.__version__}")
EOF

# --- danijar/dreamerv3 (JAX) --------------------------------------------------------------------
C="$HERE/jax-constraints.txt"
make_venv "$JAX_VENV"
pip_install "$JAX_VENV" "$C" -r "$HERE/jax-requirements.txt"
no_cuda "$JAX_VENV"
site="$("$JAX_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$SRC" >"$site/dreamerv3_src.pth"
printf 'path %s\ncommit %s\n' "$SRC" "$commit" >"$JAX_VENV/dreamerv3-src.txt"
"$JAX_VENV/bin/python" -m pip check 2>&1 | sed 's/^/pip check (jax): /' || true
"$JAX_VENV/bin/python" - <<'EOF'
import jax

import embodied
from dreamerv3 import agent  # noqa: F401

assert jax.__version__ == "0.4.33", jax.__version__
print(f"ok: jax {jax.__version__} on {jax.devices()}, dreamerv3 at {embodied.__path__[0]}/..")
EOF
echo "dreamerv3 source: $SRC, commit $commit"
echo "venvs: $SHEEPRL_VENV, $JAX_VENV ($(( $(date +%s) - start )) s)"
