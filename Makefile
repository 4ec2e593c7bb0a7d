# Everything a fresh clone needs: `make local-score` and `make test` (both create .venv).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CLI := $(PY) -m unlearning_challenge

PHASE ?= phases/default.yaml
INPUT_DATA ?= input_data
REFERENCE_DATA ?= reference_data
SUBMISSION ?= starting_kit/sample_submission
NUM_MODELS ?=
NO_TIME_LIMIT ?=
# The platform's limit on the ingestion step, in seconds (0: none; default: the phase's, from competition.yaml)
STEP_TIME_LIMIT ?=
OUT ?=
# shown or hidden: override the phase's ingestion.participant_output (rehearse a private phase's rules)
PARTICIPANT_OUTPUT ?=
# make evaluate SUBMISSIONS="a b.zip" OUT=runs/final [BACKEND=ray] [GPUS_PER_RUN=1] [CPUS_PER_RUN=1] [WORK=...]
SUBMISSIONS ?=
BACKEND ?= local
GPUS_PER_RUN ?=
CPUS_PER_RUN ?=
WORK ?=
# make compare A=runs/x B=runs/y: two ingestion outputs (or local-score run folders) of the same phase
A ?=
B ?=

LOCAL_SCORE_FLAGS := $(if $(NUM_MODELS),--num-models $(NUM_MODELS)) \
                     $(if $(NO_TIME_LIMIT),--no-time-limit) \
                     $(if $(STEP_TIME_LIMIT),--step-time-limit $(STEP_TIME_LIMIT)) \
                     $(if $(OUT),--output $(OUT)) \
                     $(if $(PARTICIPANT_OUTPUT),--participant-output $(PARTICIPANT_OUTPUT))

.PHONY: install test test-fast local-score quick-check evaluate compare reference bench baselines packages

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,participant]'
	touch $@

install: $(VENV)/.installed

# The tests run on one pytest-xdist worker per CPU core (at most 4; tests/conftest.py says which tests
# share a worker). TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= auto
PYTEST = $(PY) -m pytest -q --numprocesses=$(TEST_WORKERS) --maxprocesses=4

# The whole suite, then its 10 slowest tests.
test: install
	$(PYTEST) --durations=10

# The tests that need no ingestion or scoring subprocess, no training, no Ray and no docker (markers
# assigned in tests/conftest.py): under 2 minutes on 2 CPU cores, for checking a change as you make it.
test-fast: install
	$(PYTEST) -m "not ingestion and not training and not ray and not docker"

local-score: install
	$(CLI) local-score --submission $(SUBMISSION) --input-data $(INPUT_DATA) --reference-data $(REFERENCE_DATA) $(LOCAL_SCORE_FLAGS)

# One run of SUBMISSION: retain/test/forget accuracy, membership-inference accuracy, seconds against the budget
# (ORIGINAL=k: from original model k of a phase with several).
quick-check: install
	$(CLI) quick-check --submission $(SUBMISSION) --input-data $(INPUT_DATA) $(if $(NO_TIME_LIMIT),--no-time-limit) \
		$(if $(ORIGINAL),--original $(ORIGINAL)) \
		$(if $(OUT),--output $(OUT)) $(if $(PARTICIPANT_OUTPUT),--participant-output $(PARTICIPANT_OUTPUT))

# Organizers: several submissions on a phase (on a Ray cluster's run slots with BACKEND=ray), resumable; scores and a leaderboard.
evaluate: install
	@test -n "$(SUBMISSIONS)" -a -n "$(OUT)" || { echo 'give submissions and an output folder: make evaluate SUBMISSIONS="a b" OUT=runs/<x>' >&2; exit 2; }
	$(CLI) evaluate $(SUBMISSIONS) --output $(OUT) --input-data $(INPUT_DATA) --reference-data $(REFERENCE_DATA) \
		--backend $(BACKEND) $(if $(NUM_MODELS),--num-models $(NUM_MODELS)) $(if $(NO_TIME_LIMIT),--no-time-limit) \
		$(if $(GPUS_PER_RUN),--gpus-per-run $(GPUS_PER_RUN)) $(if $(CPUS_PER_RUN),--cpus-per-run $(CPUS_PER_RUN)) \
		$(if $(WORK),--work $(WORK)) $(if $(PARTICIPANT_OUTPUT),--participant-output $(PARTICIPANT_OUTPUT))

# Is A's score really above B's? Paired bootstrap of the difference: its 95% interval and the share of resamples A wins.
compare: install
	@test -n "$(A)" -a -n "$(B)" || { echo "give two folders: make compare A=runs/<x> B=runs/<y>" >&2; exit 2; }
	$(CLI) compare $(A) $(B) --reference-data $(REFERENCE_DATA)

reference: install
	$(CLI) reference --config $(PHASE) --input-data $(INPUT_DATA) --reference-data $(REFERENCE_DATA)

bench: install
	$(PY) benchmarks/bench_metric.py
	$(PY) benchmarks/bench_worker_start.py
	$(PY) benchmarks/bench_attacks.py
	$(PY) benchmarks/bench_calibration.py
	$(PY) benchmarks/bench_evaluate_backends.py

# Scores every starting-kit baseline on the Check phase and writes the table into starting_kit/README.md.
baselines: install
	$(CLI) baselines

# Writes the table of the packages a submission can import (with their versions here) into starting_kit/README.md.
packages: install
	$(CLI) packages

include mk/platform.mk
