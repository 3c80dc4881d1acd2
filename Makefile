# One entry point per job. Every target sets up the virtual environment first (idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run rag test test-all test-slurm lint bench eval clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch pinned: an unpinned torch pulls several GB of CUDA packages. These machines serve the
	# 2.13.0 CPU wheel locally; elsewhere add --index-url https://download.pytorch.org/whl/cpu.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

run: setup  ## the main job: a short training run + evaluation on the defaults
	$(PY) scripts/train.py

rag: setup  ## the WASS-RAG pipeline: knowledge base, predictor, MaskablePPO with R_RAG
	$(PY) scripts/build_kb.py
	$(PY) scripts/train_predictor.py
	$(PY) scripts/train.py teacher=rag train.total_timesteps=30000 agent.learning_rate=0.0001 agent.ent_coef=0.0

test: setup  ## the default test suite (slow tests excluded)
	$(PY) -m pytest -n 2 --dist loadgroup -q

test-all: setup  ## every test, slow ones included (the Slurm ones skip without a Slurm)
	$(PY) -m pytest -n 2 --dist loadgroup -q -m ""

test-slurm: setup  ## start the single-host Slurm (scripts/start_slurm.sh), run the tests marked slurm
	bash scripts/start_slurm.sh
	$(PY) -m pytest -q -m slurm

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: setup  ## speed figures, as ratios to references measured in the same run
	$(PY) scripts/bench_env.py
	$(PY) scripts/bench_heft.py

eval: setup  ## every scheduler on the default experiment (conf/experiment/default.yaml)
	$(PY) scripts/evaluate.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
