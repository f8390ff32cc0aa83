#!/usr/bin/env bash
# Make the ignored folders a GPU lease carries (benchmarks/gpu_lease.sh), on this machine:
#   .whl  Python 3.12 wheels the device image lacks (gymnasium, mujoco 3.17.0, dm_control's needs)
#   .dmc  dm_control 1.0.50 without its locomotion, dog, blender and manipulation assets (its
#         wheel is 56 MB; the call carries 64 MiB in all, and the state-based suite needs none)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
grep -qs '^/.whl/$' .git/info/exclude || printf '/.whl/\n/.dmc/\n' >> .git/info/exclude
rm -rf .whl .dmc /tmp/dmc_wheel && mkdir -p .whl .dmc /tmp/dmc_wheel
plat=""
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64 any; do plat="$plat --platform $p"; done
get() { "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
          --implementation cp $plat -d "$1" "$2"; }
gym=$("$PY" -m pip show gymnasium | awk '/^Version/{print $2}')
for pkg in "gymnasium==$gym" farama-notifications mujoco==3.17.0 dm-env dm-tree labmaze glfw pyopengl; do
  get .whl "$pkg"
done
get /tmp/dmc_wheel dm-control==1.0.50
(cd /tmp/dmc_wheel && unzip -q dm_control-*.whl 'dm_control/*')
cp -r /tmp/dmc_wheel/dm_control .dmc/
rm -rf .dmc/dm_control/{locomotion,blender,manipulation} .dmc/dm_control/suite/dog_assets
rm -f .dmc/dm_control/suite/*.png
find .dmc -name '*_test.py' -delete
du -sh .whl .dmc
