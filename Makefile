# One entry point per job. Every target sets up the virtual environment first (idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run teacher rag ablation test test-all test-slurm lint bench eval clean

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

teacher: setup  ## stages 1-2: knowledge base, predictor; runs/teacher/{kb.wkb,model.wtm,report.json}
	$(PY) scripts/build_kb.py
	$(PY) scripts/train_predictor.py

rag: teacher  ## the WASS-RAG pipeline: the teacher, then the generalist fine-tuned with and without R_RAG, side by side
	$(PY) scripts/train.py teacher=rag train.total_timesteps=30000 agent.learning_rate=0.0001 agent.ent_coef=0.0 hydra.run.dir=runs/rag/rag
	$(PY) scripts/train.py teacher=none train.total_timesteps=30000 agent.learning_rate=0.0001 agent.ent_coef=0.0 hydra.run.dir=runs/rag/plain
	$(PY) scripts/ablation_summary.py --runs plain=runs/rag/plain rag=runs/rag/rag

ablation: setup  ## the reduced ablation (a Hydra multirun, one job per core; needs make teacher first), then its summary
	$(PY) scripts/train.py -m +ablation=reduced hydra/launcher=parallel \
		+variant=sparse,dense,rag_eq3,rag_history,rag_potential,bc,bc_rag seed=0,1,2,3,4
	$(PY) scripts/ablation_summary.py runs/ablation/reduced

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
