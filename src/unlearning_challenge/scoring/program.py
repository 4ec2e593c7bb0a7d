"""The scoring program: compares the unlearned models with the retrained ones.

Reads ``<input>/res`` (ingestion output) and ``<input>/ref`` (reference data),
refuses anything inconsistent, and writes ``scores.txt`` (``key: value``
lines), ``scores.json`` and ``detailed_results.html`` into ``--output``. The
reference folder's ``phase.yaml`` (section ``scoring``) chooses the rate
estimate of the attacks; F is also reported under the other one. Besides the
score, it reports the 2023 kit's membership-inference accuracy
(``mia_accuracy``, see :mod:`unlearning_challenge.scoring.mia`) when the ingestion
output holds the per-example losses. Exits
non-zero when ingestion failed or its output is missing, corrupt or does not
match the reference: on Codabench only this program's exit code fails a
submission. A *partial* ingestion output (the runs that fit in the platform's step time
limit, see :mod:`unlearning_challenge.deadline`) is scored as those k runs against the
first k retrained models, flagged as not comparable, or fails, as the phase's
``scoring.partial_output`` says.

In a phase whose ``participant_output`` is ``hidden`` (the reference folder's phase
config, or ``--participant-output``) a failed ingestion is reported by its runs'
indices, statuses and the fixed sentences the ingestion wrote, never by text a
run controlled (see :mod:`unlearning_challenge.runner.disclosure`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from unlearning_challenge.artifacts import (
    INGESTION_MANIFEST,
    PHASE_FILE,
    REFERENCE_ARRAYS,
    SEALED_UNLEARNED_ARRAYS,
    UNLEARNED_ARRAYS,
    ArtifactError,
    IngestionManifest,
    ModelFamily,
    read_family,
    read_ingestion_manifest,
    read_reference_manifest,
)
from unlearning_challenge.atomic import write_json, write_text
from unlearning_challenge.config import ParticipantOutput, PartialOutput, PhaseConfig, ScoringConfig, load_config
from unlearning_challenge.deadline import MIN_PARTIAL_RUNS
from unlearning_challenge.metric import ALPHA, BOUNDS, bucket_points, example_points, final_score, logit_scaled_confidence, per_example_epsilons
from unlearning_challenge.runner.disclosure import WITHHELD
from unlearning_challenge.scoring.klom import klom
from unlearning_challenge.scoring.mia import membership_inference
from unlearning_challenge.scoring.originals import OriginalsResult, originals_result, run_originals
from unlearning_challenge.scoring.report import detailed_results_html
from unlearning_challenge.scoring.result import SAMPLE_NUMBER_KEYS, ScoreResult, ScoringInputs, scores_txt
from unlearning_challenge.scoring.statistics import FamilySample, score_statistics
from unlearning_challenge.scoring.ulira import ulira

# ingestion.json's status when only the runs that fit in the step time limit are in its arrays
PARTIAL = "partial"
SCORES_TXT = "scores.txt"
SCORES_JSON = "scores.json"
DETAILED_RESULTS = "detailed_results.html"


class ScoringError(RuntimeError):
    """The submission cannot be scored; the message says why."""


def _failed_runs_text(ingestion: IngestionManifest, disclosure: ParticipantOutput) -> str:
    """The failed runs, each with its message and traceback; with ``hidden``, only what the trusted side wrote."""
    lines = []
    for run in ingestion.runs:
        if run.ok:
            continue
        if disclosure == ParticipantOutput.SHOWN:
            lines.append(f"  run {run.index}: {run.status}: {run.message}")
            if run.traceback_tail:
                lines.append("    " + run.traceback_tail.strip().replace("\n", "\n    "))
        else:
            lines.append(f"  run {run.index}: {run.status}: {_trusted_description(run, ingestion)}")
    return "\n".join(lines)


def _hidden_by_ingestion(ingestion: IngestionManifest) -> bool:
    """Whether the ingestion itself kept only what the trusted side wrote."""
    return ingestion.participant_output == ParticipantOutput.HIDDEN.value


def _trusted_description(run, ingestion: IngestionManifest) -> str:
    """A failed run in words the trusted side chose: its message when the ingestion hid what runs
    control, else the fixed sentence of its kind of failure."""
    if _hidden_by_ingestion(ingestion):
        return run.message
    return run.failure.sentence if run.failure is not None else "failed"


def _failed_ingestion_message(ingestion: IngestionManifest, disclosure: ParticipantOutput) -> str:
    if disclosure == ParticipantOutput.SHOWN or _hidden_by_ingestion(ingestion):
        message = ingestion.message
    else:
        message = f"it wrote status {ingestion.status!r} (its message is {WITHHELD})"
    details = _failed_runs_text(ingestion, disclosure)
    return f"the submission failed during ingestion: {message}" + (f"\n{details}" if details else "")


def read_inputs(res: Path, ref: Path, *, num_models: int | None = None,
                disclosure: ParticipantOutput = ParticipantOutput.SHOWN) -> ScoringInputs:
    """Read and cross-check both sides. ``num_models`` = k scores the first k models of each side;
    ``disclosure`` says what a failed ingestion's message may quote."""
    if not (res / INGESTION_MANIFEST).is_file():
        raise ScoringError(
            f"the ingestion output is missing ({INGESTION_MANIFEST} not found in {res}): "
            "the ingestion program did not run or crashed before writing; see its log"
        )
    ingestion = read_ingestion_manifest(res)
    partial = None
    if ingestion.status == PARTIAL:
        partial = ingestion.message or "the runs did not all fit in the phase's time limit"
        num_models = partial_runs_scored(ingestion, ref, num_models)
    elif ingestion.status != "ok":
        raise ScoringError(_failed_ingestion_message(ingestion, disclosure))
    reference = read_reference_manifest(ref)
    arrays_file = SEALED_UNLEARNED_ARRAYS if ingestion.arrays_sealed else UNLEARNED_ARRAYS
    unlearned = read_family(res / arrays_file, expected_sha256=ingestion.arrays_sha256, what="ingestion output",
                            unsealed_with=ref if ingestion.arrays_sealed else None)
    retrained = read_family(ref / REFERENCE_ARRAYS, expected_sha256=reference.arrays_sha256, what="reference data")
    for key in ("split_fingerprint", "config_fingerprint"):
        if getattr(ingestion, key) != getattr(reference, key):
            raise ScoringError(
                f"{key.replace('_', ' ')} differs: ingestion output has {str(getattr(ingestion, key))[:16]}..., "
                f"reference data has {str(getattr(reference, key))[:16]}...; the submission was run on other data "
                "than this reference was made from"
            )
    n_u, n_r = unlearned.num_models, retrained.num_models
    if n_r != reference.num_models:
        raise ScoringError(f"reference data: manifest says {reference.num_models} models, arrays hold {n_r}")
    if n_u != ingestion.num_models:
        raise ScoringError(f"ingestion output: manifest says {ingestion.num_models} models, arrays hold {n_u}")
    quick = num_models is not None and num_models < n_r  # all N of the phase: the full score
    if num_models is not None:
        if not 2 <= num_models <= min(n_u, n_r):
            raise ScoringError(f"--num-models must be between 2 and {min(n_u, n_r)} (unlearned {n_u}, retrained {n_r})")
        unlearned, retrained = unlearned.first(num_models), retrained.first(num_models)
    elif n_u != n_r:
        raise ScoringError(f"number of models differs: ingestion output has {n_u}, reference data has {n_r}")
    if unlearned.forget_logits.shape[1:] != retrained.forget_logits.shape[1:]:
        raise ScoringError(
            f"forget-set logits shape differs: ingestion output {unlearned.forget_logits.shape[1:]}, "
            f"reference data {retrained.forget_logits.shape[1:]} ([examples, classes])"
        )
    if not np.array_equal(unlearned.forget_image_ids, retrained.forget_image_ids) or not np.array_equal(
        unlearned.forget_labels, retrained.forget_labels
    ):
        raise ScoringError("the forget set differs between the ingestion output and the reference data (image ids or labels)")
    if not np.all(np.isfinite(retrained.forget_logits)):
        raise ScoringError("reference data: retrained forget logits hold NaN or infinite values; regenerate the reference")
    return ScoringInputs(unlearned, retrained, ingestion, reference, quick, partial)


def partial_runs_scored(ingestion: IngestionManifest, ref: Path, num_models: int | None) -> int:
    """How many runs of a partial ingestion output are scored (those that fit, or the first ``num_models``
    of them), as the reference folder's ``scoring.partial_output`` allows; ScoringError when it fails them."""
    config = phase_config(ref)
    policy = config.scoring.partial_output if config is not None else PartialOutput.FAIL
    done, asked = ingestion.num_models or 0, ingestion.num_models_asked or ingestion.num_models_reference
    what = f"the submission's runs did not all fit in the phase's time limit ({ingestion.message})"
    if policy == PartialOutput.FAIL:
        raise ScoringError(f"{what}. This phase ranks only submissions whose {asked} runs all finish: make each "
                           "run faster (ingestion.json has each run's seconds)")
    if done < MIN_PARTIAL_RUNS:
        raise ScoringError(f"{what}. At least {MIN_PARTIAL_RUNS} runs are needed for a score: make each run faster")
    return done if num_models is None else min(num_models, done)


def phase_config(ref: Path) -> PhaseConfig | None:
    """The reference folder's phase config (None when it has none)."""
    path = ref / PHASE_FILE
    return load_config(path) if path.is_file() else None


def scoring_config(ref: Path) -> ScoringConfig:
    """The ``scoring`` section of the reference folder's phase config (defaults when it has none)."""
    config = phase_config(ref)
    return ScoringConfig() if config is None else config.scoring


def participant_output(ref: Path, override: str | None) -> ParticipantOutput:
    """``override``, else the reference folder's phase setting; hidden when that cannot be read."""
    if override:
        return ParticipantOutput(override)
    try:
        config = phase_config(ref)
    except (OSError, ValueError):
        return ParticipantOutput.HIDDEN
    return ParticipantOutput.HIDDEN if config is None else config.participant_output


def _family_sample(family: ModelFamily) -> FamilySample:
    """The family's forget-set confidences ``[N, E]`` and per-model accuracies ``[N]``."""
    return FamilySample.of(logit_scaled_confidence(family.forget_logits, family.forget_labels),
                           family.retain_accuracy, family.test_accuracy)


def _quality(unlearned: np.ndarray, retrained: np.ndarray, *, bounds: str, alpha: float) -> tuple[np.ndarray, float]:
    """The per-example epsilons ``[E]`` of confidences ``[N, E]`` against ``[M, E]``, and F: their mean points at N."""
    epsilons = per_example_epsilons(unlearned, retrained, bounds=bounds, alpha=alpha)
    return epsilons, float(np.mean(example_points(epsilons, unlearned.shape[0])))


SAMPLE_SPLITS = ("retain", "validation")


def samples_unavailable(unlearned: ModelFamily, retrained: ModelFamily) -> str | None:
    """Why F and KLoM on the retain and validation samples cannot be computed (None: they can)."""
    if not retrained.has_samples:
        return "the reference data hold no retain/validation samples; regenerate it with this version to get them"
    if not unlearned.has_samples:
        return ("the ingestion output holds no retain/validation samples; run the submission with this version's "
                "ingestion program to get them")
    for split in SAMPLE_SPLITS:
        for key in (f"{split}_sample_indices", f"{split}_sample_labels"):
            if not np.array_equal(getattr(unlearned, key), getattr(retrained, key)):
                return (f"the ingestion output and the reference data hold logits on different {split} examples "
                        f"({key} differ); run the ingestion on the input data made with this reference")
        if getattr(retrained, f"{split}_sample_indices").size == 0:
            return f"the {split} sample holds no examples"
    return None


def sample_numbers(unlearned: ModelFamily, retrained: ModelFamily, *, bounds: str = "empirical",
                   alpha: float = ALPHA) -> dict[str, float | str | None]:
    """F (under ``bounds``) and KLoM's 95th percentile on the retain and validation samples, keyed as in
    :class:`ScoreResult`, and ``samples_unavailable``: None, or why the four numbers are None."""
    reason = samples_unavailable(unlearned, retrained)
    numbers: dict[str, float | str | None] = {**dict.fromkeys(SAMPLE_NUMBER_KEYS), "samples_unavailable": reason}
    if reason is not None:
        return numbers
    for split in SAMPLE_SPLITS:
        u, r = (logit_scaled_confidence(getattr(family, f"{split}_sample_logits"),
                                        getattr(family, f"{split}_sample_labels")) for family in (unlearned, retrained))
        numbers[f"forget_quality_{split}_sample"] = _quality(u, r, bounds=bounds, alpha=alpha)[1]
        numbers[f"klom_{split}_p95"] = klom(u, r).p95
    return numbers


def compute_scores(inputs: ScoringInputs, *, bounds: str = "empirical", alpha: float = ALPHA) -> ScoreResult:
    """The leaderboard numbers and the per-example details (without the statistics).

    Besides F and the score: the number of epsilon buckets at this N, the
    per-example likelihood-ratio attack (:mod:`~unlearning_challenge.scoring.ulira`)
    and KLoM on the forget set (:mod:`~unlearning_challenge.scoring.klom`), both
    from the confidences already read (no extra training), and F and KLoM on the
    retain and validation samples when both families hold them (:func:`sample_numbers`).

    ``bounds`` (``"empirical"``, the published rule, or ``"clopper-pearson"``) and
    ``alpha`` choose the rate estimate behind F and the score; F under both is
    reported as ``forget_quality_empirical`` and ``forget_quality_clopper_pearson``.

    When the runs started from K > 1 original models (their records name them), also each
    original's results and the training-seed shares (:func:`originals_numbers`).
    """
    if bounds not in BOUNDS:
        raise ValueError(f"bounds must be one of {list(BOUNDS)}; got {bounds!r}")
    u, r = inputs.unlearned, inputs.retrained
    unlearned, retrained = _family_sample(u), _family_sample(r)
    epsilons, quality = {}, {}
    for b in BOUNDS:
        epsilons[b], quality[b] = _quality(unlearned.confidences, retrained.confidences, bounds=b, alpha=alpha)
    mean_retrain_seconds = inputs.reference.mean_retrain_seconds
    attack = ulira(unlearned.confidences, retrained.confidences)
    divergence = klom(unlearned.confidences, retrained.confidences)
    return ScoreResult(
        score=final_score(quality[bounds], u.retain_accuracy, r.retain_accuracy, u.test_accuracy, r.test_accuracy),
        forget_quality=quality[bounds],
        retain_accuracy_ratio=float(u.retain_accuracy.mean() / r.retain_accuracy.mean()),
        test_accuracy_ratio=float(u.test_accuracy.mean() / r.test_accuracy.mean()),
        mean_run_seconds=float(u.seconds.mean()),
        retain_accuracy_unlearned=float(u.retain_accuracy.mean()),
        retain_accuracy_retrained=float(r.retain_accuracy.mean()),
        test_accuracy_unlearned=float(u.test_accuracy.mean()),
        test_accuracy_retrained=float(r.test_accuracy.mean()),
        forget_accuracy_unlearned=float(u.forget_accuracy.mean()),
        forget_accuracy_retrained=float(r.forget_accuracy.mean()),
        mean_retrain_seconds=float(r.seconds.mean() if mean_retrain_seconds is None else mean_retrain_seconds),
        num_models=int(u.num_models),
        num_buckets=int(bucket_points(u.num_models)[0].size),
        num_forget_examples=int(u.forget_logits.shape[1]),
        bounds=bounds,
        forget_quality_empirical=quality["empirical"],
        forget_quality_clopper_pearson=quality["clopper-pearson"],
        clopper_pearson_alpha=float(alpha),
        ulira_accuracy=attack.accuracy,
        ulira_accuracy_std=attack.std,
        klom_forget_p95=divergence.p95,
        **sample_numbers(u, r, bounds=bounds, alpha=alpha),
        mia_unlearned=membership_inference(u),
        mia_retrained=membership_inference(r) if r.has_losses else None,
        epsilons=np.asarray(epsilons[bounds], dtype=np.float64),
        ulira_per_example=attack.per_example,
        klom_per_example=divergence.per_example,
        unlearned=unlearned,
        retrained=retrained,
        originals=originals_numbers(inputs, unlearned, retrained, bounds=bounds, alpha=alpha),
    )


def originals_numbers(inputs: ScoringInputs, unlearned: FamilySample, retrained: FamilySample, *, bounds: str,
                      alpha: float) -> OriginalsResult | None:
    """Each original's results and the training-seed shares (see :mod:`~unlearning_challenge.scoring.originals`)
    when the scored runs started from K > 1 original models; None when they all started from one."""
    originals = run_originals(inputs.ingestion.runs, unlearned.num_models)
    if originals is None:
        return None
    return originals_result(unlearned, retrained, originals, bounds=bounds, alpha=alpha)


def add_statistics(result: ScoreResult, **options) -> ScoreResult:
    """``result`` with its statistics (see :func:`~unlearning_challenge.scoring.statistics.score_statistics`,
    whose keyword arguments ``options`` are) under the score's own rate estimate."""
    statistics = score_statistics(result.unlearned, result.retrained, observed_score=result.score,
                                  bounds=result.bounds, alpha=result.clopper_pearson_alpha, **options)
    return result.with_statistics(statistics)


def write_scores(output: Path, result: ScoreResult, inputs: ScoringInputs, *, per_example: bool = True) -> None:
    """``detailed_results.html``, ``scores.json`` and ``scores.txt`` into ``output``; ``per_example``
    False (a phase that hides what runs control) leaves out every per-example value and plot."""
    output.mkdir(parents=True, exist_ok=True)
    write_text(output / DETAILED_RESULTS, detailed_results_html(result, inputs, per_example=per_example))
    write_json(output / SCORES_JSON, result.to_json(quick_check=inputs.quick_check, per_example=per_example,
                                                    partial=inputs.partial, over_budget_runs=inputs.over_budget_runs))
    write_text(output / SCORES_TXT, scores_txt(result))


def score(res: Path, ref: Path, output: Path, *, num_models: int | None = None, disclosure_override: str | None = None,
          progress: bool = True) -> ScoreResult:
    """Score the ingestion output ``res`` against the reference data ``ref`` (the first ``num_models``
    of each side when given), write :func:`write_scores`'s files into ``output``; the result.
    ``disclosure_override``: "shown" or "hidden" (None: the reference data's phase setting).
    Raises ScoringError, ArtifactError or ValueError when it cannot be scored."""
    disclosure = participant_output(ref, disclosure_override)
    inputs = read_inputs(res, ref, num_models=num_models, disclosure=disclosure)
    k = inputs.unlearned.num_models
    if inputs.partial is not None:
        print(f"partial output: {inputs.partial}; scoring those {k} runs against the first {k} retrained models, "
              f"not the phase's {inputs.reference.num_models}: not comparable with the leaderboard", file=sys.stderr)
    elif inputs.quick_check:
        print(f"quick check: scoring the first {k} models of each side, "
              f"not the phase's {inputs.reference.num_models}", file=sys.stderr)
    for run in inputs.over_budget_runs:
        print(f"over budget: run {run['index']} used {run['ratio']:.2f} times its budget; scored in this phase, "
              "but the Feedback and Final phases would fail it", file=sys.stderr)
    config = scoring_config(ref)
    result = compute_scores(inputs, bounds=config.bounds, alpha=config.alpha)
    if result.samples_unavailable:
        print(f"retain/validation-sample numbers: n/a ({result.samples_unavailable})", file=sys.stderr)
    result = add_statistics(result, progress=progress)
    write_scores(output, result, inputs, per_example=disclosure == ParticipantOutput.SHOWN)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scoring", description="Score a submission's ingestion output.")
    parser.add_argument("--input", type=Path, help="folder holding res/ (ingestion output) and ref/ (reference data)")
    parser.add_argument("--res", type=Path, help="ingestion output folder (default: <input>/res)")
    parser.add_argument("--ref", type=Path, help="reference data folder (default: <input>/ref)")
    parser.add_argument("--output", required=True, type=Path, help="folder for scores.txt, scores.json, detailed_results.html")
    parser.add_argument("--num-models", type=int, default=None, help="score only the first k models of each side (quick check)")
    parser.add_argument("--participant-output", choices=ParticipantOutput.values(), default=None,
                        help="whether a failed ingestion's run output may be quoted (shown) or not (hidden); "
                             "default: the reference data's phase config")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    res = args.res or (args.input / "res" if args.input else None)
    ref = args.ref or (args.input / "ref" if args.input else None)
    if res is None or ref is None:
        parser.error("give --input (holding res/ and ref/) or both --res and --ref")
    try:
        result = score(res, ref, args.output, num_models=args.num_models,
                       disclosure_override=args.participant_output)
    except (ScoringError, ArtifactError, ValueError) as exc:
        print(f"scoring failed: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(scores_txt(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
