"""``unlearning-challenge``: one command over the library's parts."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from unlearning_challenge import __version__
from unlearning_challenge.platforms.commands import PLATFORMS


def _reference(args: argparse.Namespace) -> int:
    from unlearning_challenge.config import load_config
    from unlearning_challenge.reference.models import pick_device
    from unlearning_challenge.reference.generate import assemble, generate_reference, parse_shard
    from unlearning_challenge.reference.ray_tasks import RaySettings
    from unlearning_challenge.reference.work import WorkFolder

    config = load_config(args.config)
    work = args.work or Path("work") / config.name
    ray = None
    if args.backend == "ray":
        # --device is the tasks' device; this machine only assembles, on what it has.
        ray = RaySettings(address=args.ray_address, device=args.device, gpus_per_model=args.gpus_per_model,
                          cpus_per_model=args.cpus_per_model, memory_per_model=args.memory_per_model)
        device = pick_device()
    else:
        device = pick_device(args.device)
    if args.assemble_only:
        summary = assemble(config, WorkFolder(work), args.input_data, args.reference_data, device,
                           retime_models=args.retime, timing_from=args.timing_from)
    else:
        try:
            summary = generate_reference(
                config, work_dir=work, input_dir=args.input_data, reference_dir=args.reference_data,
                device=device, shard=parse_shard(args.shard), backend=args.backend, ray=ray, retime_models=args.retime,
                timing_from=args.timing_from,
            )
        except KeyboardInterrupt:
            print(f"reference: interrupted; the finished models stay in {work}: run the same command to resume",
                  file=sys.stderr)
            return 130
    _seal_keys_for_hidden_phase(config, args.input_data, args.reference_data)
    if summary is None:
        return 0
    original, retrained = summary["original"], summary["retrained"]
    originals = summary.get("originals") or [original]
    for k, each in enumerate(originals):
        name = "original model" if len(originals) == 1 else f"original model {k} (seed {each['seed']})"
        print(f"{name}: retain {each['retain_accuracy']:.3f}, test {each['test_accuracy']:.3f}, "
              f"forget {each['forget_accuracy']:.3f}")
    print(f"retrained (mean of {config.reference.num_models}): retain {retrained['retain_accuracy']:.3f}, "
          f"test {retrained['test_accuracy']:.3f}, forget {retrained['forget_accuracy']:.3f}; "
          f"{summary['mean_retrain_seconds']:.1f} s per model")
    print(f"evaluation samples: {summary['evaluation_samples']}")
    print(f"wrote {args.input_data} and {args.reference_data}")
    return 0


def _seal_keys_for_hidden_phase(config, input_data: Path, reference_data: Path) -> None:
    """A phase that hides what runs control seals their arrays: give its data a key pair if they have none."""
    from unlearning_challenge.config import ParticipantOutput
    from unlearning_challenge.sealing import has_public_key, make_keys

    if config.participant_output == ParticipantOutput.HIDDEN and not has_public_key(input_data):
        make_keys(input_data, reference_data)
        print(f"made a sealing key pair (participant output is hidden): {input_data} and {reference_data}")


def _seal_keys(args: argparse.Namespace) -> int:
    from unlearning_challenge.sealing import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, make_keys

    for folder in (args.input_data, args.reference_data):
        if not folder.is_dir():
            print(f"seal-keys: {folder} is not a folder; give the phase's input and reference data folders",
                  file=sys.stderr)
            return 2
    make_keys(args.input_data, args.reference_data, replace=args.replace)
    print(f"wrote {args.input_data / PUBLIC_KEY_FILE} (public: seals the runs' arrays) and "
          f"{args.reference_data / PRIVATE_KEY_FILE} (private: only the scoring program reads it)")
    return 0


MIN_QUICK_MODELS = 4


def quick_check_problem(num_models: int) -> tuple[str, str]:
    """("refused" or "warning", why) for a quick check with ``num_models`` models, or ("", "")."""
    from unlearning_challenge.metric import bucket_points

    if num_models >= MIN_QUICK_MODELS:
        return "", ""
    buckets = len(bucket_points(num_models)[0]) if num_models >= 2 else 0
    if buckets == 0:
        return "refused", (f"NUM_MODELS={num_models} cannot score: the forgetting quality's epsilon buckets reach "
                           f"up to ceil(log(N - 1)), and there is none at N = {num_models}, so F would be 0 "
                           f"whatever the submission does; use NUM_MODELS={MIN_QUICK_MODELS} or more")
    return "warning", (f"NUM_MODELS={num_models} gives the forgetting quality only {buckets} epsilon buckets "
                       f"(up to ceil(log(N - 1)) = {buckets // 2}), so F is a very coarse check; "
                       f"use NUM_MODELS={MIN_QUICK_MODELS} or more to compare methods")


def _local_score(args: argparse.Namespace) -> int:
    """Ingestion then scoring, each in its own process, as the platform runs them."""
    from unlearning_challenge.runner.guardian import call_tied

    if args.num_models is not None:
        verdict, why = quick_check_problem(args.num_models)
        if verdict == "refused":
            print(f"local-score: {why}", file=sys.stderr)
            return 2
        if verdict:
            print(f"local-score: warning: {why}", file=sys.stderr)
    out = args.output or Path("runs") / time.strftime("local-%Y%m%d-%H%M%S")
    if out.exists() and any(out.iterdir()):
        print(f"local-score: output folder {out} is not empty; choose another with OUT=...", file=sys.stderr)
        return 2
    res, scores = out / "res", out / "scores"
    if args.num_models:
        print(f"quick check: running and scoring only the first {args.num_models} models", file=sys.stderr)
    ingest = [sys.executable, "-m", "unlearning_challenge.ingestion", "--input", str(args.input_data),
              "--output", str(res), "--submission", str(args.submission)]
    if args.num_models:
        ingest += ["--num-models", str(args.num_models)]
    if args.no_time_limit:
        ingest.append("--no-time-limit")
    else:
        ingest += ["--step-time-limit", f"{_step_time_limit(args):g}"]
    if args.participant_output:
        ingest += ["--participant-output", args.participant_output]
    ingest_code = call_tied(ingest)
    score = [sys.executable, "-m", "unlearning_challenge.scoring", "--res", str(res),
             "--ref", str(args.reference_data), "--output", str(scores)]
    if args.num_models:
        score += ["--num-models", str(args.num_models)]
    if args.participant_output:
        score += ["--participant-output", args.participant_output]
    score_code = call_tied(score)
    if ingest_code or score_code:
        print(f"local-score: the submission failed (ingestion exit {ingest_code}, scoring exit {score_code}); "
              f"ingestion output in {res}", file=sys.stderr)
        return 1
    print(f"outputs: ingestion {res}, scores {scores}/scores.txt, details {scores}/detailed_results.html")
    return 0


def _step_time_limit(args: argparse.Namespace) -> float:
    """The step time limit a rehearsal runs under (0: none), as the platform would apply it; says which."""
    if args.step_time_limit is not None:
        seconds, source = args.step_time_limit, "--step-time-limit"
    else:
        from unlearning_challenge.platforms.phases import step_time_limit_for

        limit, source = step_time_limit_for(args.input_data)
        seconds = float(limit or 0)
    if seconds:
        print(f"local-score: the ingestion step ends within {seconds:g} s ({source}): the runs that do not fit are "
              "not started, as on the platform; STEP_TIME_LIMIT=0 lifts it", file=sys.stderr)
    else:
        print(f"local-score: no step time limit ({source})", file=sys.stderr)
    return seconds


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _evaluate(args: argparse.Namespace) -> int:
    """Several submissions on a phase, resumable (locally or on a Ray cluster), their scores and a leaderboard."""
    from unlearning_challenge.evaluation.options import EvaluationOptions

    options = EvaluationOptions(
        submissions=tuple(args.submissions), output=args.output, input_data=args.input_data,
        reference_data=args.reference_data, num_models=args.num_models, work=args.work, backend=args.backend,
        ray_address=args.ray_address, gpus_per_run=args.gpus_per_run, cpus_per_run=args.cpus_per_run,
        memory_per_run=args.memory_per_run, no_time_limit=args.no_time_limit, participant_output=args.participant_output)
    options.check()  # before the heavy imports
    if args.num_models is not None:
        verdict, why = quick_check_problem(args.num_models)
        if verdict == "refused":
            print(f"evaluate: {why}", file=sys.stderr)
            return 2
        if verdict:
            print(f"evaluate: warning: {why}", file=sys.stderr)
    from unlearning_challenge.evaluation.driver import evaluate

    signal.signal(signal.SIGTERM, _interrupt)  # stopped from outside: as Ctrl-C (runs stopped, a cluster stopped)
    try:
        return evaluate(options, log=lambda text: print(text, file=sys.stderr))
    except KeyboardInterrupt:
        print(f"evaluate: interrupted; the finished runs stay in {options.work_folder}: run the same command to "
              "resume", file=sys.stderr)
        return 130


def _add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("submissions", type=Path, nargs="+", metavar="SUBMISSION",
                   help="submission folders (holding unlearning.py) or their zips")
    p.add_argument("--output", type=Path, required=True,
                   help="folder for each submission's res/ and scores/, and leaderboard.csv and .html")
    p.add_argument("--input-data", type=Path, default=Path("input_data"))
    p.add_argument("--reference-data", type=Path, default=Path("reference_data"))
    p.add_argument("--num-models", type=int, default=None, help="run and score only the first k of the N runs")
    p.add_argument("--work", type=Path, default=None,
                   help="work folder of finished runs, for resuming (default: <output>/work)")
    p.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local: every run in this process, one after another; ray: on a cluster's run slots "
                        "(one long-lived Ray actor each)")
    p.add_argument("--ray-address", default=None, metavar="HOST:PORT",
                   help="the Ray cluster to join (default: RAY_ADDRESS, else a local cluster started for the command)")
    p.add_argument("--gpus-per-run", type=float, default=1.0, metavar="G",
                   help="GPUs each run slot holds on a cluster with GPUs (whole GPUs unless --no-time-limit)")
    p.add_argument("--cpus-per-run", type=int, default=1, metavar="C",
                   help="CPUs each run slot holds; on CPU also its torch threads (OMP_NUM_THREADS)")
    p.add_argument("--memory-per-run", type=float, default=None, metavar="GIB",
                   help="memory each run slot reserves on its node, in GiB (default: the phase's "
                        "ingestion.memory_limit_gib, or 4 without one, plus 2 for the slot itself)")
    p.add_argument("--no-time-limit", action="store_true", help="do not enforce the per-run time budget")
    _add_participant_output(p)


def _quick_check(args: argparse.Namespace) -> int:
    from unlearning_challenge.quick_check import run_quick_check

    return run_quick_check(args.submission, args.input_data, args.output, no_time_limit=args.no_time_limit,
                           participant_output=args.participant_output, original=args.original)


def _docker_build(args: argparse.Namespace) -> int:
    from unlearning_challenge.platforms.competition import load_competition
    from unlearning_challenge.platforms.docker_image import ImageBuild, build_image, docker_client

    build_args = dict(arg.split("=", 1) for arg in args.build_arg)
    tag = args.tag or load_competition(args.competition).docker_image
    build_image(docker_client(), ImageBuild(tag=tag, root=Path.cwd(), local_base=args.local_base, build_args=build_args))
    return 0


def _docker_rehearse(args: argparse.Namespace) -> int:
    from unlearning_challenge.platforms.docker_rehearse import rehearse

    outcome = rehearse(args.platform, args.submission, root=Path.cwd(), competition=args.competition, phase=args.phase,
                       num_models=args.num_models, no_time_limit=args.no_time_limit, local_base=args.local_base,
                       output=args.output, participant_output=args.participant_output)
    return 0 if outcome.ok else 1


def _add_participant_output(parser: argparse.ArgumentParser) -> None:
    from unlearning_challenge.config import ParticipantOutput

    parser.add_argument("--participant-output", choices=ParticipantOutput.values(), default=None,
                        help="shown: keep the runs' output, tracebacks and error text; hidden: only fixed sentences, "
                             "as in a private phase (default: the phase config's ingestion.participant_output)")


def _build_arg(text: str) -> str:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--build-arg takes NAME=value (got {text!r})")
    return text


def _add_compare_arguments(parser: argparse.ArgumentParser, *, many: bool) -> argparse.ArgumentParser:
    """``compare A B`` (``many`` False) or ``rank FOLDER...`` (``many`` True)."""
    if many:
        parser.add_argument("folders", type=Path, nargs="+", metavar="FOLDER",
                            help="ingestion output folders, or local-score run folders (holding res/)")
    else:
        parser.add_argument("a", type=Path, metavar="A", help="ingestion output folder, or a local-score run folder")
        parser.add_argument("b", type=Path, metavar="B", help="the same for the other submission (same phase)")
    parser.add_argument("--reference-data", type=Path, default=Path("reference_data"))
    parser.add_argument("--seed", type=int, default=0, help="seed of the resampling (same seed, same result)")
    parser.add_argument("--resamples", type=int, default=None,
                        help="number of joint resamples (default: 200 for the Check phase, fewer for large N and E)")
    return parser


def _compare(args: argparse.Namespace) -> int:
    from unlearning_challenge.scoring.compare import run_compare

    return run_compare(args)


def _rank(args: argparse.Namespace) -> int:
    from unlearning_challenge.scoring.compare import run_rank

    return run_rank(args)


def _add_platform_commands(sub) -> None:
    """The organizer's and participant's platform tools: bundle, submission, baselines, compare, rank, packages."""
    from unlearning_challenge.platforms.baselines import add_baselines_arguments, run_baselines
    from unlearning_challenge.platforms.build import add_bundle_arguments, run_bundle
    from unlearning_challenge.platforms.environment import add_packages_arguments, run_packages
    from unlearning_challenge.platforms.submission_zip import add_submission_arguments, run_submission

    p = sub.add_parser("bundle", help="build dist/competition_bundle.zip (CodaLab v1.5) and "
                                      "dist/codabench_bundle.zip (Codabench v2) from competition.yaml")
    add_bundle_arguments(p).set_defaults(func=run_bundle)
    p = sub.add_parser("submission", help="zip a submission folder (the folder holding unlearning.py) for upload")
    add_submission_arguments(p).set_defaults(func=run_submission)
    p = sub.add_parser("baselines", help="score every starting-kit baseline and the sample; write the table "
                                         "into starting_kit/README.md")
    add_baselines_arguments(p).set_defaults(func=run_baselines)
    p = sub.add_parser("compare", help="paired comparison of two submissions' ingestion outputs (same phase): "
                                       "the score difference, its 95%% interval, and whether it is real or noise")
    _add_compare_arguments(p, many=False).set_defaults(func=_compare)
    p = sub.add_parser("rank", help="each submission's score interval, the interval of ranks it takes and its "
                                    "probability of ranking first, from joint resamples")
    _add_compare_arguments(p, many=True).set_defaults(func=_rank)
    p = sub.add_parser("packages", help="write the table of the packages a submission can import into "
                                        "starting_kit/README.md")
    add_packages_arguments(p).set_defaults(func=run_packages)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unlearning-challenge", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("reference", help="train the original and N retrained models; write input_data/ and reference_data/")
    p.add_argument("--config", required=True, type=Path, help="phase config YAML")
    p.add_argument("--work", type=Path, default=None, help="work folder for resumable progress (default: work/<phase>)")
    p.add_argument("--input-data", type=Path, default=Path("input_data"))
    p.add_argument("--reference-data", type=Path, default=Path("reference_data"))
    p.add_argument("--shard", default=None, help="train only models i, i+k, ... (i/k), e.g. 0/4")
    p.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local: one model after another on this machine; ray: one Ray task per model")
    p.add_argument("--device", default=None,
                   help="cuda or cpu (default: cuda when there is a GPU; with --backend ray, when the cluster has GPUs)")
    p.add_argument("--ray-address", default=None, metavar="HOST:PORT",
                   help="the Ray cluster to join (default: RAY_ADDRESS, a cluster started here with `ray start`, "
                        "else a new local one)")
    p.add_argument("--gpus-per-model", type=float, default=1.0, metavar="G",
                   help="GPUs each Ray task asks when training on cuda; a fraction lets small models share a GPU")
    p.add_argument("--cpus-per-model", type=float, default=1.0, metavar="C",
                   help="CPUs each Ray task asks (and torch threads it uses unless training.cpu_threads is set)")
    p.add_argument("--memory-per-model", type=float, default=None, metavar="GIB",
                   help="memory each Ray task reserves on its node, in GiB (default 4)")
    p.add_argument("--assemble-only", action="store_true", help="only write the folders from a finished work folder")
    p.add_argument("--retime", type=int, default=0, metavar="K",
                   help="take the time budget from K models retrained again on this machine (e.g. the platform's worker)")
    p.add_argument("--timing-from", type=Path, default=None, metavar="DIR",
                   help="keep the time budget recorded in DIR, an earlier input data folder of the same phase "
                        "(when the models were retrained again on busy machines)")
    p.set_defaults(func=_reference)

    p = sub.add_parser("seal-keys", help="make the key pair a phase with hidden participant output seals its runs' "
                                         "arrays with (public key into the input data, private into the reference data)")
    p.add_argument("--input-data", type=Path, required=True)
    p.add_argument("--reference-data", type=Path, required=True)
    p.add_argument("--replace", action="store_true", help="replace an existing pair")
    p.set_defaults(func=_seal_keys)

    p = sub.add_parser("local-score", help="rehearse a submission: ingestion then scoring, as the platform runs them")
    p.add_argument("--submission", type=Path, default=Path("starting_kit/sample_submission"))
    p.add_argument("--input-data", type=Path, default=Path("input_data"))
    p.add_argument("--reference-data", type=Path, default=Path("reference_data"))
    p.add_argument("--num-models", type=int, default=None, help="quick check with the first k models")
    p.add_argument("--no-time-limit", action="store_true",
                   help="enforce neither the per-run budget nor the platform's step time limit")
    p.add_argument("--step-time-limit", type=float, default=None, metavar="SECONDS",
                   help="the platform's limit on the ingestion step (0: none; default: the execution_time_limit of "
                        "the phase of competition.yaml whose task uses --input-data, as `make bundle` computes it)")
    p.add_argument("--output", type=Path, default=None, help="fresh output folder (default: runs/local-<time>)")
    _add_participant_output(p)
    p.set_defaults(func=_local_score)

    p = sub.add_parser("evaluate", help="organizers: run submissions on a phase (locally or on a Ray cluster's "
                                        "run slots, resumable), then each one's ingestion output and scores and one leaderboard")
    _add_evaluate_arguments(p)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("quick-check", help="one run of a submission: accuracies, membership inference, seconds "
                                           "against the budget (no reference data needed)")
    p.add_argument("--submission", type=Path, default=Path("starting_kit/sample_submission"))
    p.add_argument("--input-data", type=Path, default=Path("input_data"))
    p.add_argument("--no-time-limit", action="store_true", help="report a slow run's accuracies instead of failing it")
    p.add_argument("--output", type=Path, default=None, help="fresh output folder (default: runs/quick-<time>)")
    p.add_argument("--original", type=int, default=None, metavar="K",
                   help="start the run from original model K (0 .. reference.num_originals - 1; default 0)")
    _add_participant_output(p)
    p.set_defaults(func=_quick_check)

    p = sub.add_parser("docker-build", help="build the competition image (docker SDK, clean staged context)")
    p.add_argument("--competition", type=Path, default=Path("competition.yaml"))
    p.add_argument("--tag", default=None, help="image name (default: docker_image from the competition file)")
    p.add_argument("--local-base", action="store_true",
                   help="base made with debootstrap and Python packages from wheels downloaded here (no Docker Hub)")
    p.add_argument("--build-arg", action="append", default=[], type=_build_arg, metavar="NAME=value")
    p.set_defaults(func=_docker_build)

    p = sub.add_parser("docker-rehearse", help="run the bundle's programs in the image as a platform's worker does")
    p.add_argument("--platform", choices=PLATFORMS, default="codabench")
    p.add_argument("--submission", type=Path, default=Path("starting_kit/sample_submission"))
    p.add_argument("--competition", type=Path, default=Path("competition.yaml"))
    p.add_argument("--phase", default="Check", help="the phase's name in the competition file")
    p.add_argument("--num-models", type=int, default=None, help="quick check with the first k models")
    p.add_argument("--no-time-limit", action="store_true", help="no per-run budget (the phase's step limit stays)")
    p.add_argument("--local-base", action="store_true", help="build the image, when stale, as docker-build --local-base")
    p.add_argument("--output", type=Path, default=None, help="fresh folder for the run folders (default: runs/docker-<platform>-<time>)")
    _add_participant_output(p)
    p.set_defaults(func=_docker_rehearse)

    _add_platform_commands(sub)

    p = sub.add_parser("ingest", help="the ingestion program", add_help=False)
    p.set_defaults(func=None, program="unlearning_challenge.ingestion")
    p = sub.add_parser("score", help="the scoring program", add_help=False)
    p.set_defaults(func=None, program="unlearning_challenge.scoring")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("ingest", "score"):
        module = {"ingest": "unlearning_challenge.ingestion", "score": "unlearning_challenge.scoring"}[argv[0]]
        return __import__(module, fromlist=["main"]).main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 2
