# worldmodels: `make demo` trains DreamerV3 on CartPole; `make test` runs lint + the fast suite.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export OMP_NUM_THREADS ?= 1

.PHONY: setup setup-dev demo test lint format browser bench-cartpole bench-pendulum bench-tdmpc2-pendulum \
	bench-muzero-cartpole bench-dreamer-v1-v2-planet bench-fidelity bench-dreamerv3-bf16 bench-efficientzero bench-efficientzero-minatar bench-worldmodels-takecover bench-regression bench-mcts bench-replay bench-resume clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The CLI ends up at .venv/bin/worldmodels; torch==2.13.0 is pinned (CPU wheel).
setup: $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	@$(BIN)/worldmodels list > /dev/null && echo "installed: $(BIN)/worldmodels"

setup-dev: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'

demo: setup
	$(BIN)/worldmodels train dreamerv3 --env gym:CartPole-v1 --steps 30000 --seed 0 \
		--set run.stop_at_return=475 --set run.eval_every=2500 \
		--run-dir runs/demo-cartpole-$$(date +%Y%m%d-%H%M%S)

lint: setup-dev
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools

format: setup-dev
	$(BIN)/ruff format src tests benchmarks tools
	$(BIN)/ruff check --fix src tests benchmarks tools

# Debian's chromium for the real-browser tests of `worldmodels report` (tests/viz/test_report.py):
# installed when missing and make runs as root (about a minute); otherwise those tests are skipped
# and say how to install it.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium for the browser tests: apt-get install -y chromium"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
			>/dev/null) || echo "could not install chromium: the browser tests will be skipped"; \
	else \
		echo "chromium is missing: the browser tests will be skipped (install: apt-get install -y chromium)"; \
	fi

test: setup-dev lint browser
	$(BIN)/python -m pytest -q

bench-cartpole: setup
	$(BIN)/python benchmarks/learning.py --env gym:CartPole-v1 --steps 30000 --seeds 0 1 2

bench-pendulum: setup
	$(BIN)/python benchmarks/learning.py --env gym:Pendulum-v1 --steps 30000 --seeds 0 1 2

bench-tdmpc2-pendulum: setup
	$(BIN)/python benchmarks/learning.py --agent tdmpc2 --env gym:Pendulum-v1 --steps 20000 --seeds 0 1 2

bench-muzero-cartpole: setup
	$(BIN)/python benchmarks/learning.py --agent muzero --env gym:CartPole-v1 --steps 50000 --seeds 0 1 2

# The launcher of benchmarks/learning.py (one job per seed), fed a job file: 9 long runs, two at a
# time; runs left at the budget (seconds) resume where they were on the next `make` of it.
BUDGET ?= 36000
bench-dreamer-v1-v2-planet: setup
	$(BIN)/python benchmarks/parallel.py --jobs benchmarks/jobs_dreamer_v1_v2_planet.txt \
		--out runs/bench/dreamer-v1-v2-planet --resume --max-parallel 2 --budget $(BUDGET)

bench-fidelity: setup
	$(BIN)/python benchmarks/parallel.py --jobs benchmarks/jobs_fidelity.txt \
		--out runs/bench/fidelity --resume --max-parallel 2 --budget $(BUDGET)

bench-dreamerv3-bf16: setup
	$(BIN)/python benchmarks/parallel.py --jobs benchmarks/jobs_dreamerv3_bf16.txt \
		--out runs/bench/dreamerv3-bf16 --resume --max-parallel 2 --budget $(BUDGET)

bench-efficientzero: setup
	$(BIN)/python benchmarks/parallel.py --jobs benchmarks/jobs_efficientzero_cartpole.txt \
		--out runs/bench/efficientzero --resume --max-parallel 2 --budget $(BUDGET)

bench-efficientzero-minatar: setup
	$(BIN)/python benchmarks/parallel.py --jobs benchmarks/jobs_efficientzero_minatar.txt \
		--out runs/bench/efficientzero-minatar --resume --max-parallel 2 --budget $(BUDGET)

bench-worldmodels-takecover: setup
	$(BIN)/python -m pip install -q -e '.[doom]'
	$(BIN)/python benchmarks/parallel.py --jobs benchmarks/jobs_worldmodels_takecover.txt \
		--out runs/bench/worldmodels-takecover --resume --max-parallel 2 --episodes 100 \
		--budget $(BUDGET)

bench-regression: setup
	$(BIN)/python benchmarks/parallel.py --jobs benchmarks/jobs_spine_regression.txt \
		--out runs/bench/regression --resume --max-parallel 2 --budget $(BUDGET)

bench-mcts: setup
	$(BIN)/python benchmarks/mcts_speed.py --repeats 5

bench-replay: setup
	$(BIN)/python benchmarks/replay_sampling.py

bench-resume: setup
	$(BIN)/python benchmarks/resume.py --env gym:CartPole-v1 --preset debug --steps 4000 --kills 3

clean:
	rm -rf runs .pytest_cache .ruff_cache
