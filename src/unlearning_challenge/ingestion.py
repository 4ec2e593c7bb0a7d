"""The ingestion program: runs the submission N times and records what scoring needs.

For each run the trusted side starts a fresh worker (a
:class:`~unlearning_challenge.runner.session.RunSession` runs and bounds it) on a
fresh copy of the original model (run i: original i mod K with K ``reference.num_originals``
original models) with a per-run seed, measures its time, then
evaluates the returned weights itself (the judged run, shared with ``evaluate``:
:func:`~unlearning_challenge.judged.judged_runs`). Output, written only by this process into ``--output``:

``unlearned.npz``
    a :class:`~unlearning_challenge.artifacts.ModelFamily` (forget logits,
    accuracies, run seconds, seeds), only when every run succeeded (or every run
    that fit in the platform's step time limit: a partial output, see
    :mod:`unlearning_challenge.deadline`); in a hidden
    phase whose input data hold a sealing key, ``unlearned.npz.sealed`` instead,
    readable only by the scoring program (see :mod:`unlearning_challenge.sealing`);
``ingestion.json``
    status (``ok`` / ``partial`` / ``failed``), message, fingerprints, time budget and one
    record per run (status, seconds, message, traceback and output tails).

With ``participant_output: hidden`` (the phase config's default for private data, or
``--participant-output hidden``) nothing the submission controls reaches this
program's output folder, stdout or stderr: each run is kept as
:func:`~unlearning_challenge.runner.disclosure.for_participants` shows it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from unlearning_challenge.runner.environment import OMP_WAIT_POLICY
from unlearning_challenge.runner.forkserver import start_early_for_arguments, wait_for_early

# Before torch loads OpenMP: idle threads sleep, so CPU time counts work (reference/calibration.py).
os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)
if __name__ == "__main__":  # the program: its fork server imports torch beside this process (2 s sooner)
    start_early_for_arguments(sys.argv[1:])

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from unlearning_challenge import __version__
from unlearning_challenge.artifacts import (
    SEALED_UNLEARNED_ARRAYS,
    SUBMISSION_FILE,
    UNLEARNED_ARRAYS,
    ArtifactError,
    IngestionManifest,
    InputManifest,
    ModelFamily,
    RunRecord,
    RunStatus,
    write_family,
    write_manifest,
)
from unlearning_challenge.config import ParticipantOutput, PhaseConfig
from unlearning_challenge.data import EvaluationSamples, FaceDataset, Splits
from unlearning_challenge.deadline import (
    RESERVE_SECONDS,
    STEP_TIME_LIMIT_FILE,
    StepDeadline,
    partial_sentence,
    read_step_time_limit,
)
from unlearning_challenge.judged import (
    judged_runs,
    load_input,
    new_session,
    original_weights,
    run_limits,
    trusted_samples,
)
from unlearning_challenge.reference.calibration import Clock
from unlearning_challenge.reference.evaluation import ModelOutputs
from unlearning_challenge.reference.models import pick_device
from unlearning_challenge.runner.disclosure import WITHHELD, for_participants
from unlearning_challenge.runner.folders import RunFolders
from unlearning_challenge.runner.isolation import locked
from unlearning_challenge.runner.session import RunSession
from unlearning_challenge.sealing import PUBLIC_KEY_FILE, has_public_key


class IngestionError(RuntimeError):
    """The ingestion cannot start (bad input data or submission folder)."""


class OutputFolderError(IngestionError):
    """The output folder cannot be written (nothing can be recorded there either)."""


class WithheldError(IngestionError):
    """The ingestion failed during the runs of a phase that hides what runs control; the message says only that."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ingestion", description="Run a submission's unlearning N times.")
    parser.add_argument("--input", required=True, type=Path, help="input data folder (input_data/)")
    parser.add_argument("--output", required=True, type=Path, help="folder for the ingestion output")
    parser.add_argument("--submission", required=True, type=Path, help="folder holding unlearning.py")
    parser.add_argument("--num-models", type=int, default=None, help="run only the first k of the N runs (quick check)")
    parser.add_argument("--original", type=int, default=None, metavar="K",
                        help="start every run from original model K (0 .. num_originals - 1) instead of run i from "
                             "original i mod num_originals (a quick check of one original)")
    parser.add_argument("--no-time-limit", action="store_true", help="do not enforce the per-run time budget")
    parser.add_argument("--time-budget", type=float, default=None, help="per-run budget in seconds (default: from the input data)")
    parser.add_argument("--step-time-limit", type=float, default=None, metavar="SECONDS",
                        help="the platform's time limit on this step: no run starts that cannot end before it, and "
                             "the runs that fit are written as a partial output (0: none; default: the input "
                             f"data's {STEP_TIME_LIMIT_FILE}, written by `make bundle`, else none)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--memory-limit-gib", type=float, default=None, help="cap each worker's address space (0: none)")
    parser.add_argument("--participant-output", choices=ParticipantOutput.values(), default=None,
                        help="keep runs' output, tracebacks and error text (shown) or only fixed sentences (hidden); "
                             "default: the phase config's ingestion.participant_output")
    return parser


def check_submission(submission: Path) -> None:
    if not submission.is_dir():
        raise IngestionError(f"submission folder not found: {submission}")
    if not (submission / SUBMISSION_FILE).is_file():
        found = sorted(p.name for p in submission.iterdir())[:10]
        raise IngestionError(
            f"the submission has no {SUBMISSION_FILE} at its root (found: {found}); "
            f"put {SUBMISSION_FILE} at the top of the folder (or of the zip)"
        )


def check_output_writable(output: Path) -> None:
    """Refuse to start (before any run) when the output folder cannot be written."""
    try:
        output.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output, prefix=".write-check-"):
            pass
    except OSError as exc:
        try:
            info = output.stat()
            owner = f"owned by uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):04o}"
        except OSError:
            owner = "not readable"
        raise OutputFolderError(
            f"cannot write the output folder {output} ({owner}; this process runs as uid {os.geteuid()}): "
            f"{exc.strerror or exc}. Run the programs as the folder's owner (the competition image runs as root "
            "by default, as the platforms' workers expect), or make the folder writable for this user"
        ) from None


def ingestion_manifest(config: PhaseConfig, manifest: InputManifest, records: list[RunRecord], *, status: str,
                       message: str, num_models: int, budget: float | None, device: torch.device,
                       arrays_sha256: str | None, participant_output: ParticipantOutput,
                       **details) -> IngestionManifest:
    """The output's manifest, with each run as participants may read it; ``details``: timing,
    worker_user, isolation_warning, worker_start."""
    return IngestionManifest(
        status=status,
        message=message,
        phase=config.name,
        config_fingerprint=manifest.config_fingerprint,
        split_fingerprint=manifest.split_fingerprint,
        num_models=num_models,
        num_models_reference=manifest.num_models,
        time_budget_seconds=budget,
        budget_clock=Clock.for_device(device).value,
        time_limit_enforced=budget is not None,
        device=str(device),
        package_version=__version__,
        arrays_sha256=arrays_sha256,
        runs=tuple(for_participants(r, participant_output) for r in records),
        participant_output=participant_output.value,
        **details,
    )


def run_all(session: RunSession, folders: RunFolders, num_models: int, *, budget_explanation: str,
            config: PhaseConfig, device: torch.device, dataset: FaceDataset, splits: Splits,
            samples: EvaluationSamples | None = None,
            deadline: StepDeadline | None = None) -> tuple[list[RunRecord], list[ModelOutputs]]:
    """Run until every run is done, one fails or the next one cannot fit before ``deadline`` (see :func:`judged_runs`)."""
    records: list[RunRecord] = []
    outputs: list[ModelOutputs] = []
    bar = tqdm(total=num_models, desc="unlearning runs", unit="run", file=sys.stderr)
    try:
        for record, output in judged_runs(session, folders, range(num_models), budget_explanation=budget_explanation,
                                          config=config, device=device, dataset=dataset, splits=splits,
                                          samples=samples, deadline=deadline):
            if output is not None:
                outputs.append(output)
            records.append(record)
            bar.update(1)
            bar.set_postfix(last=f"{record.seconds:.1f}s", status=record.status.value)
    finally:
        bar.close()
    return records, outputs


def run_ingestion(*, input_dir: Path, output_dir: Path, submission: Path, num_models: int | None = None,
                  budget_seconds: float | None = None, no_time_limit: bool = False, device: str | None = None,
                  memory_limit_gib: float | None = None, participant_output: str | None = None,
                  step_time_limit: float | None = None, original: int | None = None, log=print) -> int:
    """Run the submission in ``submission`` (a folder holding unlearning.py) on ``input_dir``; write ``output_dir``.

    ``num_models``: run only the first k of the N runs (default: all); ``budget_seconds``:
    the per-run budget instead of the input data's; ``no_time_limit``: do not enforce
    the budget; ``device``: torch device (default: cuda when available, else cpu);
    ``memory_limit_gib``: cap each worker's address space (0: none; default: the phase's);
    ``participant_output``: "shown" or "hidden" (default: the phase's); ``step_time_limit``: the
    platform's limit on this step in seconds (0: none; None: the input data's ``step_time_limit.json``,
    else none; see :mod:`unlearning_challenge.deadline`); ``original``: start every run from this original
    model (default: run i from original i mod K). Returns 0 when all runs are ok, or when the
    runs that fit in the step time limit are (a partial output).
    """
    check_output_writable(output_dir)
    config, manifest, dataset, splits = load_input(input_dir)
    samples = trusted_samples(config, manifest, splits)
    check_submission(submission)
    num_models = runs_asked(num_models, manifest)
    check_original_asked(original, config)
    deadline = step_deadline(input_dir, step_time_limit, no_time_limit)
    disclosure, sealed = disclosure_and_sealing(config, input_dir, participant_output, log)
    torch_device = pick_device(device)
    wait_for_early()  # the calibration has the CPU to itself
    budget, timing, limits = run_limits(config, manifest, dataset, splits, torch_device,
                                        no_time_limit=no_time_limit, budget_seconds=budget_seconds)
    session = new_session(config, limits, memory_limit_gib, submission, log)
    warning = session.isolation_warning
    if warning:
        log(f"warning: {warning}")
    budget_text = "no time limit" if budget is None else (
        f"budget {budget:.1f} {timing['unit']} per run ({timing['explanation']})")
    step_text = "" if deadline is None else f"; the step ends within {deadline.limit_seconds:.0f} s"
    log(f"ingestion: {num_models} run(s) of {submission} on {torch_device}, {budget_text}{step_text}; "
        f"participant output {disclosure.value}{originals_text(config, original)}")

    records: list[RunRecord] = []
    workspace = Path(tempfile.mkdtemp(prefix="unlearning-runs-"))
    output = IngestionOutput(output_dir, input_dir, config, manifest, num_models, budget, torch_device, disclosure,
                             sealed, {"timing": timing, "worker_user": session.identity.name,
                                      "isolation_warning": warning,
                                      "step_time_limit_seconds": deadline and deadline.limit_seconds}, deadline)
    try:
        with session:
            session.guard(workspace)  # removed by the session's guardian should this process die
            try:
                with locked([input_dir.resolve(), output_dir.resolve()], session.identity) as lock_warnings:
                    for text in lock_warnings:
                        log(f"warning: {text}")
                    folders = RunFolders(workspace, config, submission.resolve(), str(torch_device),
                                         original_weights(input_dir, config), dataset, splits, start_from=original)
                    try:
                        with withheld_unless(disclosure):
                            records, outputs = run_all(
                                session, folders, num_models, budget_explanation=timing["explanation"], config=config,
                                device=torch_device, dataset=dataset, splits=splits, samples=samples,
                                deadline=deadline)
                    finally:
                        session.stop_runs()  # inside the lock: nothing a run left outlives it
                        output.details["worker_start"] = session.worker_start
            except KeyboardInterrupt:
                output.write(records, "failed", "interrupted", None)
                raise
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    return output.conclude(records, outputs, dataset, splits, log, samples)


def step_deadline(input_dir: Path, step_time_limit: float | None, no_time_limit: bool) -> StepDeadline | None:
    """The step's deadline: ``step_time_limit`` seconds (0: none), else the input data's
    ``step_time_limit.json``; none with ``no_time_limit``. Counted from this process's start."""
    if step_time_limit is not None and not (step_time_limit == 0 or step_time_limit > RESERVE_SECONDS):
        raise IngestionError(f"--step-time-limit must be 0 (none) or more than the {RESERVE_SECONDS:.0f} s kept "
                             f"for writing the output, got {step_time_limit:g}")
    seconds = read_step_time_limit(input_dir) if step_time_limit is None else step_time_limit
    if no_time_limit or not seconds:
        return None
    return StepDeadline.starting_now(seconds)


def runs_asked(num_models: int | None, manifest: InputManifest) -> int:
    """The number of runs asked (None: the input data's N), checked against N."""
    num_models = manifest.num_models if num_models is None else num_models
    if not 1 <= num_models <= manifest.num_models:
        raise IngestionError(f"--num-models must be between 1 and {manifest.num_models}, got {num_models}")
    return num_models


def originals_text(config: PhaseConfig, original: int | None) -> str:
    """Which original the runs start from, for the log ("" with one original)."""
    count = config.reference.num_originals
    if original is not None and count > 1:
        return f"; every run from original {original} of {count}"
    return f"; run i from original i mod {count}" if count > 1 else ""


def check_original_asked(original: int | None, config: PhaseConfig) -> None:
    """Refuse ``--original`` outside 0 .. K-1."""
    count = config.reference.num_originals
    if original is not None and not 0 <= original < count:
        which = "only original 0" if count == 1 else f"originals 0 .. {count - 1}"
        raise IngestionError(f"--original {original}: the input data hold {count} original model(s) "
                             f"(reference.num_originals); choose one of {which}")


def disclosure_and_sealing(config: PhaseConfig, input_dir: Path, participant_output: str | None,
                           log) -> tuple[ParticipantOutput, bool]:
    """What participants may read of the runs (``participant_output``, else the phase's) and whether
    the arrays are sealed (hidden, and the input data hold a public key; a warning when they do not)."""
    disclosure = ParticipantOutput(participant_output) if participant_output else config.participant_output
    sealed = disclosure == ParticipantOutput.HIDDEN and has_public_key(input_dir)
    if disclosure == ParticipantOutput.HIDDEN and not sealed:
        log(f"warning: participant output is hidden but the input data hold no {PUBLIC_KEY_FILE}: the runs' "
            f"arrays ({UNLEARNED_ARRAYS}, which participants can download) are not sealed; make a key pair with "
            "`unlearning-challenge seal-keys` before publishing a private phase")
    return disclosure, sealed


@dataclass
class IngestionOutput:
    """One ingestion's output folder: ``ingestion.json`` (:meth:`write`) and, when every run is ok,
    the arrays (:meth:`conclude`). ``details``: :func:`ingestion_manifest`'s details."""

    output_dir: Path
    input_dir: Path
    config: PhaseConfig
    manifest: InputManifest
    num_models: int
    budget: float | None
    device: torch.device
    disclosure: ParticipantOutput
    sealed: bool
    details: dict
    deadline: StepDeadline | None = None

    def write(self, records: list[RunRecord], status: str, message: str, sha: str | None, *,
              num_models: int | None = None) -> None:
        """``ingestion.json``; ``num_models``: the runs in the arrays of a partial output (of the ``num_models`` asked)."""
        asked = {} if num_models is None else {"num_models_asked": self.num_models}
        if self.deadline is not None:
            self.details["step_seconds"] = self.deadline.elapsed()
        write_manifest(self.output_dir, ingestion_manifest(
            self.config, self.manifest, records, status=status, message=message,
            num_models=self.num_models if num_models is None else num_models, budget=self.budget, device=self.device,
            arrays_sha256=sha, participant_output=self.disclosure, **asked, **self.details))

    def conclude(self, records: list[RunRecord], outputs: list[ModelOutputs], dataset: FaceDataset, splits: Splits,
                 log, samples: EvaluationSamples | None = None) -> int:
        """Write the output of finished runs (``records``, the ``outputs`` of those ok, evaluated also on
        ``samples`` when given): failed at the first failed run; else the arrays and ok, or partial when
        the step's time ran out first (failed when no run fit). Returns the ingestion's exit status (0: ok
        or partial)."""
        failed = next((for_participants(r, self.disclosure) for r in records
                       if r.status not in (RunStatus.OK, RunStatus.STOPPED)), None)
        if failed is not None:
            message = f"run {failed.index} (seed {failed.seed}) {failed.status.value}: {failed.message}"
            self.write(records, "failed", message, None)
            log(f"ingestion failed: {message}")
            return 1
        done = [r for r in records if r.ok]
        if len(done) < self.num_models:  # the step's time ran out
            message = self._partial_message(records, len(done))
            if len(done) == 0:
                self.write(records, "failed", message, None)
                log(f"ingestion failed: {message}")
                return 1
            return self._write_arrays(records, done, outputs, dataset, splits, log, samples, status="partial",
                                      message=message)
        return self._write_arrays(records, done, outputs, dataset, splits, log, samples, status="ok",
                                  message=f"{self.num_models} run(s) completed")

    def _partial_message(self, records: list[RunRecord], done: int) -> str:
        """The fixed sentence of the runs that fit in the step time limit (see deadline.partial_sentence)."""
        if self.deadline is None:
            raise RuntimeError(f"{done} of {self.num_models} runs done with no failure and no step deadline")
        stopped = [r.seconds for r in records if r.status == RunStatus.STOPPED]
        per_run = self.deadline.seconds_per_run if done else max(stopped, default=self.budget or 0.0)
        return partial_sentence(done, self.num_models, self.deadline.limit_seconds, per_run, at_least=not done)

    def _write_arrays(self, records: list[RunRecord], done: list[RunRecord], outputs: list[ModelOutputs],
                      dataset: FaceDataset, splits: Splits, log, samples: EvaluationSamples | None, *, status: str,
                      message: str) -> int:
        """The arrays of the ``done`` runs and ``ingestion.json`` with ``status``; 1 when they cannot be written."""
        arrays_file = SEALED_UNLEARNED_ARRAYS if self.sealed else UNLEARNED_ARRAYS
        self.details["arrays_sealed"] = self.sealed
        with withheld_unless(self.disclosure):
            family = family_of(outputs, done, dataset, splits, samples)
        try:
            sha = write_family(self.output_dir / arrays_file, family,
                               sealed_for=self.input_dir if self.sealed else None)
        except OSError as exc:  # about this program's own output folder
            message = f"the runs completed but {arrays_file} could not be written to {self.output_dir}: {exc}"
            self.write(records, "failed", message, None)
            log(f"ingestion failed: {message}")
            return 1
        self.write(records, status, message, sha, num_models=len(done) if status == "partial" else None)
        log(f"ingestion{' (partial output)' if status == 'partial' else ''}: {message}; "
            f"mean {np.mean([r.seconds for r in done]):.2f} s per run; output in {self.output_dir}")
        return 0


@contextlib.contextmanager
def withheld_unless(disclosure: ParticipantOutput):
    """Where an error's text may quote what a run left (names, values): with ``hidden``, turn any
    exception but an interrupt into a :class:`WithheldError` that says only which kind it was."""
    try:
        yield
    except WithheldError:
        raise
    except Exception as exc:
        if disclosure == ParticipantOutput.SHOWN:
            raise
        raise WithheldError(f"internal error in the ingestion program ({type(exc).__module__}."
                            f"{type(exc).__qualname__}; details {WITHHELD})") from None


def family_of(outputs: list[ModelOutputs], records: list[RunRecord], dataset: FaceDataset,
              splits: Splits, samples: EvaluationSamples | None = None) -> ModelFamily:
    """The unlearned models' family: one row per run; with ``samples``, their logits on them too."""
    return ModelFamily.stack(
        [vars(output) for output in outputs],
        forget_labels=dataset.age_group[splits.forget], forget_image_ids=dataset.image_id[splits.forget],
        seconds=[r.seconds for r in records], seeds=[r.seed for r in records],
        samples=samples, dataset_labels=dataset.age_group,
    )


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # stopped from outside: clean up workers as on Ctrl-C
    try:
        code = run_ingestion(
            input_dir=args.input, output_dir=args.output, submission=args.submission, num_models=args.num_models,
            budget_seconds=args.time_budget, no_time_limit=args.no_time_limit, device=args.device,
            memory_limit_gib=args.memory_limit_gib, participant_output=args.participant_output,
            step_time_limit=args.step_time_limit, original=args.original,
            log=lambda text: print(text, file=sys.stderr),
        )
    except (IngestionError, ArtifactError, ValueError, OSError) as exc:
        print(f"ingestion failed: {exc}", file=sys.stderr)
        if not isinstance(exc, OutputFolderError):
            record_failure(args.output, str(exc))
        return 2
    except Exception as exc:  # a defect of this program: the scoring program still finds why the ingestion failed
        record_failure(args.output, f"internal error in the ingestion program: {type(exc).__name__}: {exc}")
        raise
    return code


def record_failure(output: Path, message: str) -> None:
    """Write a failed ingestion manifest, if the output folder can be written at all."""
    try:
        output.mkdir(parents=True, exist_ok=True)
        write_manifest(output, IngestionManifest(status="failed", message=message))
    except OSError as exc:
        print(f"ingestion: could not record the failure in {output}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
