#!/usr/bin/env bash
# Issue #3 on one GPU lease, as one device call (a lease is 15 min of device time in all):
#   bash benchmarks/gpu_prepare.sh                       # here, once: .whl and .dmc
#   device run: command "bash benchmarks/gpu_lease.sh", carry [".whl"] (PlaNet needs no .dmc;
#   add ".dmc" for dmc: jobs), timeout_s 590
# 1. benchmarks/cuda_graphs.py: eager vs run.cuda_graphs for the agents of the job list (speed,
#    capture, agreement);
# 2. the job list side by side for BUDGET seconds, with run.cuda_graphs=true for the agents whose
#    graphs were captured and agree with eager; 3. console, summaries and logs to $OUT, and each
#    run directory as run-NAME.tgz (latest checkpoint and replay; ~6 MB for a PlaNet Pendulum
#    run) so that runs can continue.
# To go on in a second call: copy the returned run-*.tgz into .runs/ (ignored) and carry it too,
# carry [".whl", ".runs"]; the graph check is then skipped (the runs keep their own setting).
# To go on on CPU: extract into an empty folder, compare checkpoints/latest.json's step with any
# run of the same name under runs/issue3, keep the one further on, then parallel.py --resume.
# JOBS picks the list: benchmarks/gpu_jobs_planet.txt (default; the three PlaNet seeds, all that
# issue #3 still needs) or benchmarks/gpu_jobs_issue3.txt (session 11's ten runs).
set -u
START=$SECONDS
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/par
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD/.dmc:$PWD/src MUJOCO_GL=disable PYTHONUNBUFFERED=1
export TORCHINDUCTOR_COMPILE_THREADS=2
python3 -c "import gymnasium, torch; print(torch.__version__, torch.cuda.get_device_name(0))" || exit 3
JOBS=${JOBS:-benchmarks/gpu_jobs_planet.txt}
# Runs brought back by an earlier call (run-NAME.tgz in the carried folder .runs) continue.
resumed=0
for f in .runs/run-*.tgz; do
  [ -e "$f" ] && tar xzf "$f" -C /tmp/par && echo "resuming $f" && resumed=1
done
if [ "$resumed" = 0 ]; then
  agents=$(grep -v '^#' "$JOBS" | cut -s -d: -f2 | awk 'NF {print $1}' | sort -u | tr '\n' ' ')
  echo "jobs $JOBS, agents: $agents"
  timeout 180 python3 benchmarks/cuda_graphs.py --updates 30 --acts 200 --agents $agents 2>&1 \
    | tee "$OUT/graphs.md"
  usable=$(grep '^usable:' "$OUT/graphs.md" | cut -d: -f2)
else
  usable=""
fi
python3 - "$usable" "$JOBS" > /tmp/jobs.txt <<'PY'
import sys  # run.cuda_graphs=true for the agents whose graphs were captured and agree
ok = set(sys.argv[1].split())
for line in open(sys.argv[2]):
    words = line.partition(":")[2].split()
    graphs = not line.startswith("#") and words and words[0] in ok
    print(line.rstrip("\n") + (" --set run.cuda_graphs=true" if graphs else ""))
PY
jobs=/tmp/jobs.txt
cat /tmp/jobs.txt
(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv -l 20 > /tmp/par/smi.csv 2>&1 &)
# BUDGET: what is left of the call's 590 s, less 110 s for the SIGTERM grace, final evals and tar
BUDGET=${BUDGET:-$((590 - (SECONDS - START) - 110))}
echo "budget: $BUDGET s"
python3 benchmarks/parallel.py --jobs "$jobs" --budget "$BUDGET" --grace 40 \
  --out /tmp/par --episodes 10 --resume 2>&1 | tee "$OUT/console.txt"
tar czf "$OUT/logs.tgz" -C /tmp/par --exclude='*/replay' --exclude='*/checkpoints' .
# Whole run directories come back too (a call returns at most 8 files of 16 MiB; three are above),
# with only the checkpoint that checkpoints/latest.json names.
n=0
for d in /tmp/par/*/; do
  name=$(basename "$d")
  case "$name" in *.incomplete-*) continue ;; esac
  [ "$n" -lt 5 ] || { echo "not returned (8-file limit): $name"; continue; }
  keep=$(python3 -c "import json,sys; print(' '.join(json.load(open(sys.argv[1]))['files']))" \
    "$d/checkpoints/latest.json" 2>/dev/null)
  excl=()
  for c in "$d"/checkpoints/ckpt-*; do
    [ -e "$c" ] || continue
    case " $keep " in *" $(basename "$c") "*) ;; *) excl+=(--exclude="$name/checkpoints/$(basename "$c")") ;; esac
  done
  extra=()
  for e in "$name.log" "$name.final.json"; do [ -e "/tmp/par/$e" ] && extra+=("$e"); done
  tar czf "$OUT/run-$name.tgz" -C /tmp/par --exclude="$name/.lock" "${excl[@]}" "$name" "${extra[@]}"
  if [ "$(stat -c %s "$OUT/run-$name.tgz")" -gt 16000000 ]; then
    rm "$OUT/run-$name.tgz"; echo "not returned (over 16 MB): $name"
  else
    n=$((n + 1))
  fi
done
ls -la "$OUT"
