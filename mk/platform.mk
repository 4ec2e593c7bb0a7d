# Bundle, docker image, submission zips and baselines (organizer and participant tools).
# Included by the main Makefile, which defines PY, SUBMISSION, NUM_MODELS, NO_TIME_LIMIT and the install target.

SETTINGS ?= competition/settings.yaml
DIST ?= dist
# `make submission SUBMISSION=folder [SUBMISSION_ZIP=path.zip]`; default: dist/<folder name>.zip
SUBMISSION_ZIP ?=
# `make docker [DOCKER_IMAGE=name:tag] [DOCKER_BUILD_ARGS='--build-arg TORCH_VERSION=...']`
DOCKER_IMAGE ?= $(shell $(PY) -m unlearning_challenge.bundle --settings $(SETTINGS) --get docker_image 2>/dev/null)
DOCKER_BUILD_ARGS ?=

.PHONY: bundle submission docker docker-push docker-check

# Writes dist/competition_bundle.zip (CodaLab v1.5) and dist/codabench_bundle.zip (Codabench v2),
# printing which phases went in and why the others were left out.
bundle: install
	$(PY) -m unlearning_challenge.bundle --settings $(SETTINGS) --out-dir $(DIST)

# Zips a submission folder (files at the zip's root) for upload.
submission: install
	$(PY) -m unlearning_challenge.submission_zip $(SUBMISSION) $(if $(SUBMISSION_ZIP),--output $(SUBMISSION_ZIP),--out-dir $(DIST))

# Builds the image every submission runs in; its name comes from the settings (docker_image).
docker: install
	@test -n "$(DOCKER_IMAGE)" || { echo "make docker: no docker_image in $(SETTINGS)"; exit 1; }
	docker build -t $(DOCKER_IMAGE) -f docker/Dockerfile $(DOCKER_BUILD_ARGS) .

docker-push: docker
	docker push $(DOCKER_IMAGE)

# Runs the image's self-check (imports, CUDA visibility) on this machine's GPU.
docker-check: docker
	docker run --rm --gpus all $(DOCKER_IMAGE) python3 -c "import torch, unlearning_challenge; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
