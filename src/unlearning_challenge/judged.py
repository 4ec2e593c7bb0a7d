"""The judged run: what the ingestion program and ``evaluate`` share.

A phase's input data read and cross-checked (:func:`load_input`), the per-run budget
calibrated on this machine and the hard limits (:func:`run_limits`), the session the
runs go in (:func:`new_session`), and the loop that runs a submission's runs one after
another, each judged by the trusted side (:func:`judged_runs`: its weights evaluated
here, its time against the budget, the step's deadline kept). The ingestion program
(:mod:`unlearning_challenge.ingestion`) writes its output from these runs; ``evaluate``
(:mod:`unlearning_challenge.evaluation`) saves them one by one.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from unlearning_challenge.artifacts import (
    DATASET_FILE,
    ORIGINAL_WEIGHTS,
    PHASE_FILE,
    ArtifactError,
    InputManifest,
    RunRecord,
    RunStatus,
    original_weights_name,
    read_input_manifest,
    sha256_file,
)
from unlearning_challenge.config import OverBudget, PhaseConfig, load_config
from unlearning_challenge.data import EvaluationSamples, FaceDataset, Splits, evaluation_samples, load_dataset, split_fingerprint
from unlearning_challenge.deadline import StepDeadline
from unlearning_challenge.failures import Failure
from unlearning_challenge.reference import calibration
from unlearning_challenge.reference.calibration import Clock, calibration_step_seconds
from unlearning_challenge.reference.evaluation import ModelOutputs, UnusableModelError, evaluate_saved_model
from unlearning_challenge.runner.folders import RunFolders
from unlearning_challenge.runner.forkserver import participant_preload
from unlearning_challenge.runner.isolation import WorkerCaps, WorkerIdentity
from unlearning_challenge.runner.limits import RunLimits
from unlearning_challenge.runner.session import RunSession


def load_input(input_dir: Path) -> tuple[PhaseConfig, InputManifest, FaceDataset, Splits]:
    """Read and cross-check the input data folder."""
    manifest = read_input_manifest(input_dir)
    config = load_config(input_dir / PHASE_FILE)
    if config.fingerprint() != manifest.config_fingerprint:
        raise ArtifactError(f"input data: {PHASE_FILE} does not match manifest.json (config fingerprint differs)")
    dataset, splits = load_dataset(input_dir / DATASET_FILE)
    if split_fingerprint(dataset, splits) != manifest.split_fingerprint:
        raise ArtifactError(f"input data: {DATASET_FILE} does not match manifest.json (split fingerprint differs)")
    check_originals(input_dir, config, manifest)
    return config, manifest, dataset, splits


def original_weights(input_dir: Path, config: PhaseConfig) -> list[Path]:
    """The files of the phase's K original models, in order: run i starts from original i mod K."""
    return [Path(input_dir) / original_weights_name(k) for k in range(config.reference.num_originals)]


_REGENERATE = "copy the phase's whole input data folder again, or regenerate it with `make reference`"


def check_originals(input_dir: Path, config: PhaseConfig, manifest: InputManifest) -> None:
    """Refuse input data whose original models are not those the manifest lists: K as in phase.yaml,
    every file there, each with its seed and sha256 (with K = 1: original.safetensors there)."""
    count, listed = config.reference.num_originals, manifest.originals or ()
    if count == 1 and not listed:
        if not (input_dir / ORIGINAL_WEIGHTS).is_file():
            raise ArtifactError(f"input data: {ORIGINAL_WEIGHTS} is missing from {input_dir}")
        return
    if len(listed) != count or (manifest.num_originals or 1) != count:
        raise ArtifactError(
            f"input data: {PHASE_FILE} has reference.num_originals {count} but manifest.json lists {len(listed)} "
            f"original model(s) (num_originals {manifest.num_originals}): they come from different generations; "
            f"{_REGENERATE}")
    missing = [record.file for record in listed if not (input_dir / record.file).is_file()]
    if missing:
        raise ArtifactError(
            f"input data: manifest.json lists {count} original models but {input_dir} lacks {', '.join(missing)}: "
            f"{_REGENERATE}")
    for k, (record, seed) in enumerate(zip(listed, config.reference.original_seeds())):
        if record.file != original_weights_name(k) or record.seed != seed:
            raise ArtifactError(
                f"input data: manifest.json lists original {k} as {record.file} with seed {record.seed}, but "
                f"{PHASE_FILE} makes it {original_weights_name(k)} with seed {seed}: {_REGENERATE}")
        if sha256_file(input_dir / record.file) != record.sha256:
            raise ArtifactError(
                f"input data: {record.file} (original {k}) does not match its sha256 in manifest.json (truncated, "
                f"corrupt or another model): {_REGENERATE}")


def trusted_samples(config: PhaseConfig, manifest: InputManifest, splits: Splits) -> EvaluationSamples | None:
    """The retain and validation examples each model is also evaluated on (None: ``reference.sample_size``
    is 0): those the input manifest records, else the config's draw (an older manifest)."""
    recorded = manifest.evaluation_samples
    if recorded is not None:
        samples = EvaluationSamples(retain=np.asarray(recorded.retain_indices, dtype=np.int64),
                                    validation=np.asarray(recorded.validation_indices, dtype=np.int64))
        if not (np.isin(samples.retain, splits.retain).all() and np.isin(samples.validation, splits.val).all()):
            raise ArtifactError("input data: manifest.json's evaluation_samples name examples outside the retain "
                                "or validation split; regenerate the input data")
        return samples
    size = config.reference.sample_size
    return evaluation_samples(splits, size, config.split.seed) if size else None


def time_budget(config: PhaseConfig, manifest: InputManifest, dataset: FaceDataset, splits: Splits, device: torch.device,
                *, no_time_limit: bool = False, budget_seconds: float | None = None) -> tuple[float | None, dict]:
    """The per-run budget in seconds of ``Clock.for_device(device)`` (None: no limit) and how it was derived.

    The reference budget is wall seconds on the machine that made the reference; it is scaled by a
    speed factor. With the manifest's ``calibration_profile``: each kind of step (see
    ``calibration.step_kinds``) timed here, on this clock, over the same kind there, in wall seconds,
    and the ``FACTOR_QUANTILE`` of those ratios (the largest), so that a machine that slows one kind
    more than another does not under-budget a method that leans on it; ``timing`` records the ratios.
    With an older manifest: (one training step of the recipe here) / (one there), as before.
    """
    clock = Clock.for_device(device)
    unit = "CPU seconds" if clock is Clock.CPU else "s"
    reference_budget = manifest.time_budget_seconds
    timing = {"reference_budget_seconds": reference_budget, "speed_ratio": None, "clock": clock.value,
              "unit": unit, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}
    if no_time_limit:
        return None, {**timing, "explanation": "no time limit"}
    if budget_seconds is not None:
        return budget_seconds, {**timing, "explanation": "budget given on the command line"}
    fraction, retrain = manifest.time_fraction, manifest.mean_retrain_seconds
    explanation = f"{fraction:.0%} of one retrain's {retrain:.1f} s"
    there = manifest.calibration_profile or {}
    kinds = tuple(kind for kind in calibration.step_kinds(config.training.batch_size) if there.get(kind.name, 0) > 0)
    if config.ingestion.budget_scaling == "none" or not (kinds or manifest.calibration_step_seconds):
        return reference_budget, {**timing, "explanation": explanation}
    images, labels = dataset.images[splits.retain], dataset.age_group[splits.retain]
    if kinds:
        here = calibration.calibration_profile(images, labels, model_cfg=config.model, train_cfg=config.training,
                                               device=device, clock=clock, kinds=kinds)
        quantile = calibration.FACTOR_QUANTILE
        ratio, ratios = calibration.speed_factor(here, there, quantile)
        which = "the largest" if quantile == 1 else f"the {quantile:g} quantile"
        why = (f" ({which} of the step kinds' ratios here/there: "
               + ", ".join(f"{name} {value:.2f}" for name, value in ratios.items()) + ")")
        details = {"calibration_profile": here, "reference_calibration_profile": dict(there),
                   "calibration_ratios": ratios, "factor_quantile": quantile}
    else:
        here = calibration_step_seconds(images, labels, model_cfg=config.model, train_cfg=config.training,
                                        device=device, clock=clock)
        ratio, why = here / manifest.calibration_step_seconds, ""
        details = {"calibration_step_seconds": here}
    if clock is Clock.CPU:
        explanation += f", scaled by {ratio:.2f} to this machine's CPU seconds{why}"
    else:
        explanation += f", scaled by {ratio:.2f} for this machine's speed{why}"
    return reference_budget * ratio, {**timing, "speed_ratio": ratio, **details, "explanation": explanation}


def judged_runs(session: RunSession, folders: RunFolders, indices: Sequence[int], *, budget_explanation: str,
                config: PhaseConfig, device: torch.device, dataset: FaceDataset, splits: Splits,
                samples: EvaluationSamples | None = None,
                deadline: StepDeadline | None = None) -> Iterator[tuple[RunRecord, ModelOutputs | None]]:
    """Run ``indices`` in order, yielding each run's record and outputs (None unless ok), until one
    fails. The next worker starts while the last model is evaluated.

    Each run that ends ``ok`` is evaluated here (also on ``samples`` when given); it becomes
    ``bad_output`` when its weights are unusable, ``timeout`` when it used more than the budget
    (or stays ok, flagged, with ``ingestion.over_budget: warn``).

    ``deadline``: the step's (see :mod:`unlearning_challenge.deadline`). No worker starts unless its run
    and evaluation fit in the time left, predicted from the longest so far (the budget before the
    first); a run that is started is stopped at the deadline (``stopped``), and the runs end there.
    """
    indices = list(indices)
    limits = session.limits
    first_estimate = limits.budget or 0.0

    def fits(after: float = 0.0) -> bool:
        return deadline is None or deadline.fits(first_estimate, after=after)

    if not indices or not fits():
        return
    next_job = folders.prepare(indices[0])
    session.start(next_job)
    for position, index in enumerate(indices):
        job = next_job
        started = time.monotonic()
        step_wall_limit = None if deadline is None else deadline.run_wall_limit(limits.wall_limit)
        record = replace(session.run(job, step_wall_limit=step_wall_limit), original=folders.original_of(index))
        judging = time.monotonic()
        if deadline is not None and record.status != RunStatus.STOPPED:
            deadline.record_run(judging - started)
        more = position + 1 < len(indices) and fits(after=0.0 if deadline is None else deadline.longest_evaluation)
        if record.status == RunStatus.OK and more:
            next_job = folders.prepare(indices[position + 1])
            session.start(next_job)
        output = None
        if record.status == RunStatus.OK:
            record, output = _judged(record, Path(job.output), limits, budget_explanation=budget_explanation,
                                     config=config, device=device, dataset=dataset, splits=splits, samples=samples)
        if deadline is not None:
            deadline.record_evaluation(time.monotonic() - judging)
        folders.remove(index)
        yield record, output
        if record.status != RunStatus.OK or not more:
            break


def _judged(record: RunRecord, weights: Path, limits: RunLimits, *, budget_explanation: str, config: PhaseConfig,
            device: torch.device, dataset: FaceDataset, splits: Splits,
            samples: EvaluationSamples | None = None) -> tuple[RunRecord, ModelOutputs | None]:
    """A run that ended ok, judged by the trusted side: its weights evaluated here, also on ``samples`` (``bad_output``
    when unusable), its time against the budget (``timeout`` when over; with ``ingestion.over_budget: warn``
    ok, with ``over_budget_ratio`` and a message saying so). Returns the record and
    the model's outputs (None when it failed)."""
    try:
        output = evaluate_saved_model(weights, config.model, dataset, splits, device, samples)
    except UnusableModelError as exc:
        return replace(record, status=RunStatus.BAD_OUTPUT, message=str(exc), failure=exc.failure), None
    if limits.over_budget(record):
        message = limits.over_budget_message(record, budget_explanation)
        if config.ingestion.over_budget == OverBudget.WARN:
            return replace(record, over_budget_ratio=limits.used(record) / limits.budget,
                           message=f"{message}; scored in this phase, but the Feedback and Final phases would fail "
                                   "this run"), output
        return replace(record, status=RunStatus.TIMEOUT, failure=Failure.OVER_BUDGET, message=message), None
    return record, output


def run_limits(config: PhaseConfig, manifest: InputManifest, dataset: FaceDataset, splits: Splits,
               device: torch.device, *, no_time_limit: bool = False,
               budget_seconds: float | None = None) -> tuple[float | None, dict, RunLimits]:
    """The per-run budget, how it was derived (``timing``, with the hard limits) and the run limits,
    calibrated on this machine (see :func:`time_budget`)."""
    budget, timing = time_budget(config, manifest, dataset, splits, device,
                                 no_time_limit=no_time_limit, budget_seconds=budget_seconds)
    limits = limits_for(config, manifest, budget, timing)
    timing.update(wall_limit_seconds=limits.wall_limit, cpu_limit_seconds=limits.cpu_limit)
    return budget, timing, limits


def limits_for(config: PhaseConfig, manifest: InputManifest, budget: float | None, timing: dict) -> RunLimits:
    """The run limits of a budget :func:`time_budget` derived (``timing``: how)."""
    return RunLimits.derive(Clock(timing["clock"]), budget, hard_timeout_factor=config.ingestion.hard_timeout_factor,
                            mean_retrain_seconds=manifest.mean_retrain_seconds)


def new_session(config: PhaseConfig, limits: RunLimits, memory_limit_gib: float | None, submission: Path,
                log, identity: tuple[WorkerIdentity, str] | None = None) -> RunSession:
    """The session ``submission``'s runs are run in (``memory_limit_gib`` None: the phase's cap); its fork
    server preloads the participant libraries the submission names. ``identity``: the workers' user and the
    isolation warning that goes with it (None: :func:`~unlearning_challenge.runner.isolation.worker_identity`'s)."""
    memory_gib = config.ingestion.memory_limit_gib if memory_limit_gib is None else memory_limit_gib
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    caps = WorkerCaps(processes=config.ingestion.max_processes, memory_bytes=int(memory_gib * 2**30),
                      cpu_seconds=limits.cpu_backstop_seconds(cores))
    return RunSession(limits, fork_server=config.ingestion.fork_server, caps=caps,
                      preload=participant_preload(submission), log=log, identity=identity)
