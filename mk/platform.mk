# Bundle, docker image, submission zips and baselines (organizer and participant tools).
# Included by the main Makefile, which defines PY, SUBMISSION, NUM_MODELS, NO_TIME_LIMIT and the install target.

COMPETITION ?= competition.yaml
DIST ?= dist
# `make submission SUBMISSION=folder [SUBMISSION_ZIP=path.zip]`; default: dist/<folder name>.zip
SUBMISSION_ZIP ?=
# `make docker [DOCKER_IMAGE=name:tag] [LOCAL_BASE=1] [DOCKER_BUILD_ARGS='--build-arg TORCH_VERSION=...']`
DOCKER_IMAGE ?= $(shell $(CLI) bundle --competition $(COMPETITION) --get docker_image 2>/dev/null)
DOCKER_BUILD_ARGS ?=
# LOCAL_BASE=1: base image from debootstrap and Python packages from wheels downloaded on this host (no Docker Hub).
LOCAL_BASE ?=
# `make docker-rehearse PLATFORM=codabench|codalab`
PLATFORM ?= codabench
DOCKER_SDK := $(VENV)/.docker-sdk

.PHONY: bundle submission docker docker-push docker-check docker-rehearse docker-test

# Writes dist/competition_bundle.zip (CodaLab v1.5) and dist/codabench_bundle.zip (Codabench v2),
# printing which phases went in and why the others were left out.
bundle: install
	$(CLI) bundle --competition $(COMPETITION) --out-dir $(DIST)

# Zips a submission folder (files at the zip's root) for upload.
submission: install
	$(CLI) submission $(SUBMISSION) $(if $(SUBMISSION_ZIP),--output $(SUBMISSION_ZIP),--out-dir $(DIST))

# The docker SDK (the `docker` extra), for the targets below.
$(DOCKER_SDK): $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,docker]'
	touch $@

# Builds the image every submission runs in; its name comes from competition.yaml (docker_image).
# The context is staged from pyproject.toml, README.md, src/ and docker/wheels/ only.
docker: $(DOCKER_SDK)
	@test -n "$(DOCKER_IMAGE)" || { echo "make docker: no docker_image in $(COMPETITION)"; exit 1; }
	$(CLI) docker-build --competition $(COMPETITION) --tag $(DOCKER_IMAGE) $(if $(LOCAL_BASE),--local-base) $(DOCKER_BUILD_ARGS)

docker-push: docker
	docker push $(DOCKER_IMAGE)

# Runs the image's self-check (imports, CUDA visibility) on this machine's GPU.
docker-check: docker
	docker run --rm --gpus all $(DOCKER_IMAGE) python3 -c "import torch, unlearning_challenge; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

# Runs the bundle's ingestion and scoring programs in the image as PLATFORM's compute worker does
# (bundle and image rebuilt when stale); exits non-zero when the submission fails.
docker-rehearse: $(DOCKER_SDK)
	$(CLI) docker-rehearse --platform $(PLATFORM) --competition $(COMPETITION) --submission $(SUBMISSION) \
		$(if $(NUM_MODELS),--num-models $(NUM_MODELS)) $(if $(NO_TIME_LIMIT),--no-time-limit) \
		$(if $(LOCAL_BASE),--local-base) $(if $(OUT),--output $(OUT)) \
		$(if $(PARTICIPANT_OUTPUT),--participant-output $(PARTICIPANT_OUTPUT))

# The end-to-end test: builds the image and rehearses the sample on both platforms (tens of minutes;
# not part of `make test`). Starts its own docker daemon when none answers.
docker-test: $(DOCKER_SDK)
	DOCKER_E2E=1 $(if $(LOCAL_BASE),LOCAL_BASE=1) $(PY) -m pytest -q tests/test_docker_e2e.py
