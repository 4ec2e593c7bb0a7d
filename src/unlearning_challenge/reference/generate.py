"""Reference generation: the original model (K of them with ``reference.num_originals``) and N retrained models.

Work is kept in a work folder, one file per finished model, each written
atomically: an interrupted run resumes where it stopped, shards
(``--shard i/k``) can run on different machines that share the folder, and
``assemble`` writes ``input_data/`` and ``reference_data/`` once all models
exist. With ``backend="ray"`` the models fan out as Ray tasks (``reference_ray``).
The work folder's layout and the training of one model are in :mod:`.work`.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from unlearning_challenge import __version__
from unlearning_challenge.artifacts import (
    DATASET_FILE,
    PHASE_FILE,
    REFERENCE_ARRAYS,
    ArtifactError,
    InputManifest,
    ModelFamily,
    ModelSummary,
    OriginalRecord,
    ReferenceManifest,
    SampleRecord,
    original_weights_name,
    read_input_manifest,
    sha256_file,
    write_family,
    write_manifest,
)
from unlearning_challenge.atomic import copy_file, write_json, write_npz, write_text
from unlearning_challenge.config import PhaseConfig, ReferenceBackend, dump_config
from unlearning_challenge.data import (
    EvaluationSamples,
    FaceDataset,
    Splits,
    build_dataset_and_splits,
    evaluation_samples,
    load_dataset,
    save_dataset,
    split_fingerprint,
)
from unlearning_challenge.reference.models import pick_device
from unlearning_challenge.reference.ray_tasks import RaySettings, ray_cluster
from unlearning_challenge.reference.calibration import (
    anchored,
    calibration_profile,
    calibration_step_seconds,
    device_name,
    mean_profile,
    profile_record,
    record_profile,
    step_kinds,
)
from unlearning_challenge.reference.training import train_model
from unlearning_challenge.reference.work import WorkFolder, train_original, train_retrained


def model_seeds(config: PhaseConfig) -> list[int]:
    start = config.reference.seed_start
    return list(range(start, start + config.reference.num_models))


def prepare_data(config: PhaseConfig, work: WorkFolder) -> tuple[FaceDataset, Splits, str]:
    """Build (or reload) the dataset and split; refuse a work folder made from another config."""
    if work.info.exists():
        info = json.loads(work.info.read_text())
        if info["config_fingerprint"] != config.fingerprint():
            raise ArtifactError(
                f"work folder {work.root} was made from a different phase config "
                f"({info['phase']!r}); use another --work folder or delete this one"
            )
        dataset, splits = load_dataset(work.dataset)
        fingerprint = split_fingerprint(dataset, splits)
        if fingerprint != info["split_fingerprint"]:
            raise ArtifactError(f"work folder {work.root}: {DATASET_FILE} does not match work.json; delete the folder")
        return dataset, splits, fingerprint
    dataset, splits = build_dataset_and_splits(config.dataset, config.split)
    fingerprint = split_fingerprint(dataset, splits)
    save_dataset(work.dataset, dataset, splits)
    write_json(work.info, {
        "phase": config.name,
        "config_fingerprint": config.fingerprint(),
        "split_fingerprint": fingerprint,
    })
    return dataset, splits, fingerprint


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/k"`` -> (i, k); None -> (0, 1)."""
    if not text:
        return 0, 1
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/k (e.g. 0/4), got {text!r}") from None
    if not (count >= 1 and 0 <= index < count):
        raise ValueError(f"--shard {text!r}: need 0 <= i < k")
    return index, count


def pending_seeds(config: PhaseConfig, work: WorkFolder, shard: tuple[int, int] = (0, 1)) -> list[int]:
    index, count = shard
    return [s for i, s in enumerate(model_seeds(config)) if i % count == index and not work.retrained(s).exists()]


def pending_originals(config: PhaseConfig, work: WorkFolder, shard: tuple[int, int] = (0, 1)) -> list[int]:
    """The originals k (0 .. K-1) this shard trains (k mod count = its index) that are not trained yet."""
    index, count = shard
    return [k for k in range(config.reference.num_originals) if k % count == index and not work.original_done(k)]


def run_local(config: PhaseConfig, work: WorkFolder, seeds: list[int], device: torch.device,
              dataset: FaceDataset, splits: Splits, fingerprint: str) -> None:
    bar = tqdm(seeds, desc="retrained models", unit="model")
    for seed in bar:
        record = {**train_retrained(config, dataset, splits, seed, device, fingerprint),
                  **profile_record(retain_profile(config, dataset, splits, device))}
        write_npz(work.retrained(seed), record)
        bar.set_postfix(seconds=f"{float(record['seconds']):.1f}", test_acc=f"{float(record['test_accuracy']):.3f}")


def retain_profile(config: PhaseConfig, dataset: FaceDataset, splits: Splits, device: torch.device) -> dict[str, float]:
    """The calibration's step profile on this machine (wall seconds), as a work record keeps it."""
    return calibration_profile(dataset.images[splits.retain], dataset.age_group[splits.retain],
                               model_cfg=config.model, train_cfg=config.training, device=device)


def anchored_profile(config: PhaseConfig, profiles: list[dict[str, float] | None],
                     calibration: float) -> dict[str, float] | None:
    """The mean of ``profiles``, scaled so that its recipe step is ``calibration`` (the mean of the
    20-step measurements beside them); None when some record has no profile (made before they existed)."""
    profile = mean_profile(profiles)
    recipe = step_kinds(config.training.batch_size)[0].name
    if profile is None or recipe not in profile:
        return None
    return anchored(profile, recipe, calibration)


def _load_retrained(config: PhaseConfig, work: WorkFolder, splits: Splits, dataset: FaceDataset,
                    fingerprint: str) -> tuple[ModelFamily, float, dict[str, float] | None]:
    """The retrained family, the mean calibration step time of the machines that trained it and their
    step profile (:func:`anchored_profile`)."""
    seeds = model_seeds(config)
    missing = [s for s in seeds if not work.retrained(s).exists()]
    if missing:
        raise ArtifactError(
            f"{len(missing)} of {len(seeds)} retrained models are not trained yet (e.g. seed {missing[0]}); "
            "run `reference` again (it resumes) before assembling"
        )
    records = []
    for seed in seeds:
        with np.load(work.retrained(seed), allow_pickle=False) as f:
            if str(f["split_fingerprint"]) != fingerprint:
                raise ArtifactError(f"{work.retrained(seed)} was made from another split; delete it and rerun")
            records.append({k: f[k] for k in f.files})
    family = ModelFamily.stack(
        records, forget_labels=dataset.age_group[splits.forget], forget_image_ids=dataset.image_id[splits.forget],
        seconds=[r["seconds"] for r in records], seeds=seeds,
        samples=_records_samples(config, splits, records, [work.retrained(s) for s in seeds]),
        dataset_labels=dataset.age_group,
    )
    calibration = float(np.mean([r["calibration_step_seconds"] for r in records]))
    return family, calibration, anchored_profile(config, [record_profile(r) for r in records], calibration)


_SAMPLE_KEYS = ("retain_sample_logits", "validation_sample_logits", "retain_sample_indices", "validation_sample_indices")


def _records_samples(config: PhaseConfig, splits: Splits, records: list[dict[str, np.ndarray]],
                     paths: list[Path]) -> EvaluationSamples | None:
    """The evaluation samples every work record was evaluated on; None when the config asks none
    (``reference.sample_size: 0``) or some record has none (written before they existed).

    Refuses records that disagree on which examples they sampled, or that sampled other examples
    than the config's ``reference.sample_size`` and ``split.seed`` draw (which the manifests record).
    """
    size, seed = config.reference.sample_size, config.split.seed
    if not size or not all(key in record for record in records for key in _SAMPLE_KEYS):
        return None
    expected = evaluation_samples(splits, size, seed)
    for split, drawn in (("retain", expected.retain), ("validation", expected.validation)):
        key = f"{split}_sample_indices"
        for record, path in zip(records, paths):
            if not np.array_equal(record[key], records[0][key]):
                raise ArtifactError(
                    f"{path} was evaluated on other {split} examples than {paths[0]} ({key} differ): "
                    "delete the records that differ and rerun `reference` (it trains only what is missing)"
                )
        if not np.array_equal(records[0][key], drawn):
            raise ArtifactError(
                f"the work records were evaluated on other {split} examples than reference.sample_size {size} "
                f"with split.seed {seed} draws ({key} differ): set reference.sample_size back to the value they "
                "were trained with, or delete the records and rerun `reference`"
            )
    return expected


def _sample_record(config: PhaseConfig, family: ModelFamily) -> SampleRecord | None:
    """What the manifests say about the family's evaluation samples (None: it has none)."""
    if not family.has_samples:
        return None
    samples = EvaluationSamples(retain=family.retain_sample_indices, validation=family.validation_sample_indices)
    return SampleRecord.of(samples, size=config.reference.sample_size, seed=config.split.seed)


def _samples_text(family: ModelFamily) -> str:
    if family.has_samples:
        return (f"logits of {family.retain_sample_indices.size} retain and {family.validation_sample_indices.size} "
                "validation examples kept for every model")
    return ("no retain/validation samples (reference.sample_size is 0, or some work records predate them): "
            "scoring reports n/a for the numbers on them")


def _provenance(device: torch.device) -> dict[str, str]:
    return {
        "package_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": device_name(device),
    }


def retime(config: PhaseConfig, dataset: FaceDataset, splits: Splits, device: torch.device,
           num_models: int) -> tuple[float, float, dict[str, float] | None]:
    """Train ``num_models`` retrained models again on this machine, only to time them.

    Returns (mean training seconds, calibration step seconds, step profile). Use it when the
    reference was trained on other or busy machines and the budget should
    reflect this one (e.g. the platform's worker).
    """
    seconds, calibrations, profiles = [], [], []
    for seed in tqdm(model_seeds(config)[:num_models], desc="retiming", unit="model"):
        result = train_model(dataset, splits.retain, splits.val, model_cfg=config.model, train_cfg=config.training,
                             seed=seed, device=device)
        seconds.append(result.seconds)
        calibrations.append(calibration_step_seconds(
            dataset.images[splits.retain], dataset.age_group[splits.retain],
            model_cfg=config.model, train_cfg=config.training, device=device))
        profiles.append(retain_profile(config, dataset, splits, device))
    calibration = float(np.mean(calibrations))
    return float(np.mean(seconds)), calibration, anchored_profile(config, profiles, calibration)


def kept_timing(config: PhaseConfig, fingerprint: str, input_dir: Path) -> tuple[float, float, str]:
    """(mean retrain seconds, calibration step seconds, timing source) recorded in ``input_dir``,
    an input data folder of the same config and split."""
    earlier = read_input_manifest(input_dir)
    if earlier.config_fingerprint != config.fingerprint() or earlier.split_fingerprint != fingerprint:
        raise ArtifactError(f"--timing-from {input_dir}: its config or split differs from this phase's; "
                            "keep the timing only of an earlier assembly of the same phase")
    return earlier.mean_retrain_seconds, earlier.calibration_step_seconds, earlier.timing_source


def assemble(config: PhaseConfig, work: WorkFolder, input_dir: Path, reference_dir: Path, device: torch.device,
             *, retime_models: int = 0, timing_from: Path | None = None) -> dict:
    """Write ``input_data/`` and ``reference_data/`` from a finished work folder.

    The per-run budget comes from the mean training time of the retrained models
    or, with ``retime_models`` = k > 0, of k models trained again here to time them,
    or, with ``timing_from``, from the input data of an earlier assembly of the same
    config and split (the models were retrained on busy machines; the budget stays).
    """
    dataset, splits, fingerprint = prepare_data(config, work)
    family, calibration, profile = _load_retrained(config, work, splits, dataset, fingerprint)
    originals = _load_originals(config, work)
    original = originals[0]
    mean_seconds = float(family.seconds.mean())
    timing_source = f"mean training time of the {family.num_models} retrained models"
    if timing_from is not None:
        mean_seconds, calibration, timing_source = kept_timing(config, fingerprint, Path(timing_from))
        profile = read_input_manifest(Path(timing_from)).calibration_profile
    elif retime_models:
        mean_seconds, calibration, profile = retime(config, dataset, splits, device, retime_models)
        timing_source = f"{retime_models} model(s) retrained again to time them on {_provenance(device)['device']}"
    common = dict(
        phase=config.name,
        config_fingerprint=config.fingerprint(),
        split_fingerprint=fingerprint,
        num_models=family.num_models,
        num_forget=int(len(splits.forget)),
        num_classes=config.model.num_classes,
        mean_retrain_seconds=mean_seconds,
        calibration_step_seconds=calibration,
        timing_source=timing_source,
        provenance=_provenance(device),
        evaluation_samples=_sample_record(config, family),
        num_originals=config.reference.num_originals if config.reference.num_originals > 1 else None,
    )
    for folder in (input_dir, reference_dir):
        folder.mkdir(parents=True, exist_ok=True)
        write_text(folder / PHASE_FILE, dump_config(config))

    copy_file(work.dataset, input_dir / DATASET_FILE)
    write_manifest(input_dir, InputManifest(
        **common,
        time_fraction=config.ingestion.time_fraction,
        time_budget_seconds=config.ingestion.time_fraction * mean_seconds,
        time_budget_retain_epochs=config.ingestion.time_fraction * config.training.epochs,
        original=ModelSummary(**_summary(original)),
        originals=_copy_originals(config, work, input_dir, originals),
        calibration_profile=profile,
    ))

    sha = write_family(reference_dir / REFERENCE_ARRAYS, family)
    retrained = ModelSummary(
        retain_accuracy=float(family.retain_accuracy.mean()),
        test_accuracy=float(family.test_accuracy.mean()),
        forget_accuracy=float(family.forget_accuracy.mean()),
    )
    write_manifest(reference_dir, ReferenceManifest(**common, arrays_sha256=sha, retrained=retrained))
    summary = retrained.to_json()
    return {"original": original, "originals": originals, "retrained": summary, "mean_retrain_seconds": mean_seconds,
            "evaluation_samples": _samples_text(family)}


_SUMMARY_KEYS = ("retain_accuracy", "test_accuracy", "forget_accuracy", "seconds")


def _summary(record: dict) -> dict:
    return {key: record[key] for key in _SUMMARY_KEYS}


def _load_originals(config: PhaseConfig, work: WorkFolder) -> list[dict]:
    """Each original's work record (original.json, original_<k>.json), in order; refused when one is missing."""
    count = config.reference.num_originals
    missing = [k for k in range(count) if not work.original_done(k)]
    if missing:
        raise ArtifactError(
            f"{len(missing)} of {count} original model(s) are not trained yet (e.g. original {missing[0]}, "
            f"{work.original_weights(missing[0]).name}); run `reference` again (it resumes) before assembling"
        )
    return [json.loads(work.original_record(k).read_text()) for k in range(count)]


def _copy_originals(config: PhaseConfig, work: WorkFolder, input_dir: Path,
                    originals: list[dict]) -> tuple[OriginalRecord, ...] | None:
    """Copy each original's weights into the input data (removing those of a larger K written there before);
    with K > 1 their records for the input manifest (file, seed, sha256, accuracies), else None."""
    names = [original_weights_name(k) for k in range(len(originals))]
    for stale in input_dir.glob("original_*.safetensors"):
        if stale.name not in names:
            stale.unlink()
    for k, name in enumerate(names):
        copy_file(work.original_weights(k), input_dir / name)
    if config.reference.num_originals == 1:
        return None
    return tuple(OriginalRecord(file=name, seed=int(record["seed"]), sha256=sha256_file(input_dir / name),
                                **_summary(record)) for name, record in zip(names, originals))


def generate_reference(
    config: PhaseConfig,
    *,
    work_dir: Path,
    input_dir: Path,
    reference_dir: Path,
    device: torch.device | None = None,
    shard: tuple[int, int] = (0, 1),
    backend: ReferenceBackend | str = ReferenceBackend.LOCAL,
    ray: RaySettings | None = None,
    retime_models: int = 0,
    timing_from: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict | None:
    """Train what is missing (resuming), then assemble when every model exists.

    ``device``: where the local backend trains and where assembling runs; with
    ``backend="ray"`` the models train as Ray tasks as ``ray`` says (default
    ``RaySettings()``: the cluster ``ray.init`` finds, CUDA when it has GPUs).
    Returns the summary once assembled, None when other shards still have work.
    """
    device = device or pick_device()
    work = WorkFolder(Path(work_dir))
    if config.training.cpu_threads:
        torch.set_num_threads(config.training.cpu_threads)
    if backend == ReferenceBackend.RAY:
        # Joined and checked first: a cluster that cannot run a model is refused before any work.
        with ray_cluster(ray or RaySettings(), log) as cluster:
            dataset, splits, fingerprint = _prepare_and_log(config, work, device, log)
            seeds = pending_seeds(config, work, shard)
            originals = pending_originals(config, work, shard)
            log(f"{len(seeds)} retrained model(s) to train in this shard")
            cluster.train(config, work.root, fingerprint, seeds, originals=originals)
    elif backend == ReferenceBackend.LOCAL:
        dataset, splits, fingerprint = _prepare_and_log(config, work, device, log)
        for k in pending_originals(config, work, shard):
            train_original(config, work, dataset, splits, device, k=k)
        seeds = pending_seeds(config, work, shard)
        log(f"{len(seeds)} retrained model(s) to train in this shard")
        run_local(config, work, seeds, device, dataset, splits, fingerprint)
    else:
        raise ValueError(f"unknown backend {backend!r}; valid: {list(ReferenceBackend.values())}")
    if pending_seeds(config, work) or pending_originals(config, work):
        log("other shards still have models to train; run with --assemble-only when they are done")
        return None
    return assemble(config, work, Path(input_dir), Path(reference_dir), device, retime_models=retime_models,
                    timing_from=timing_from)


def _prepare_and_log(config: PhaseConfig, work: WorkFolder, device: torch.device,
                     log: Callable[[str], None]) -> tuple[FaceDataset, Splits, str]:
    work.root.mkdir(parents=True, exist_ok=True)
    dataset, splits, fingerprint = prepare_data(config, work)
    log(f"phase {config.name!r}: {len(dataset)} images, train {len(splits.train)} "
        f"(retain {len(splits.retain)}, forget {len(splits.forget)}), val {len(splits.val)}, test {len(splits.test)}")
    log(f"split fingerprint {fingerprint[:16]}..., device {device}, work folder {work.root}")
    return dataset, splits, fingerprint
