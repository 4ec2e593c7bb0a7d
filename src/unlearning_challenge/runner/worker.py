"""The worker process: runs the participant's ``unlearning`` once.

Started by :mod:`unlearning_challenge.runner.handle` as
``python -m unlearning_challenge.runner.worker JOB.json CTRL_FD GO_FD TRUSTED_PID`` (or forked by the fork
server, which calls :func:`main` with the same arguments). It dies with the trusted process
``TRUSTED_PID`` (a parent-death signal), loads the
data and the original model (trusted setup), reports ``ready`` on the control
socket (passing the listener of its process cap, see :mod:`unlearning_challenge.runner.proccap`), waits for ``go`` (the trusted side starts its clock there), imports the
submission, calls ``unlearning(net, retain_loader, forget_loader, val_loader)``,
saves the returned model's weights as safetensors and reports ``done``.
Messages on the control socket are single JSON lines (see
:mod:`unlearning_challenge.runner.protocol`); the job is read from JSON
(:class:`~unlearning_challenge.runner.job.Job`); nothing is pickled.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from pathlib import Path

from unlearning_challenge.runner.job import Job
from unlearning_challenge.runner.protocol import Event, Stage, send


def _import_submission(submission_dir: Path):
    from unlearning_challenge.artifacts import SUBMISSION_FILE, SUBMISSION_FUNCTION

    path = submission_dir / SUBMISSION_FILE
    if not path.is_file():
        raise FileNotFoundError(f"the submission has no {SUBMISSION_FILE} (looked in {submission_dir})")
    sys.path.insert(0, str(submission_dir))
    module_name = path.stem
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    function = getattr(module, SUBMISSION_FUNCTION, None)
    if not callable(function):
        raise AttributeError(f"{SUBMISSION_FILE} defines no function named {SUBMISSION_FUNCTION!r}")
    return function


def _confine(job: Job) -> str:
    """Confine this process to its run folder before any participant code exists in it."""
    from unlearning_challenge.runner.landlock import confine, device_paths, python_read_paths

    run_dir = str(Path(job.run_dir).resolve())
    read_only = [p for p in python_read_paths() if not Path(p).resolve().is_relative_to(run_dir)]
    return confine(read_only, [run_dir, *device_paths()])


def _setup(job: Job):
    import torch

    from unlearning_challenge.config import ModelConfig
    from unlearning_challenge.data import load_dataset, make_loader
    from unlearning_challenge.reference.models import load_model, pick_device
    from unlearning_challenge.reference.training import seed_everything

    device = pick_device(job.device)
    dataset, splits = load_dataset(job.dataset)
    model_config = ModelConfig(arch=job.model_config.arch, num_classes=job.model_config.num_classes,
                               checkpoint_dtype=job.model_config.checkpoint_dtype)
    # In training mode, as the 2023 Kaggle loop handed over the module it had just built.
    net = load_model(job.model, model_config, device).train()
    # As Kaggle's: all three shuffled, each pass's order drawn from torch's global
    # generator, which the run's seed sets (so torch.manual_seed in the submission
    # fixes the order of the passes after it).
    loaders = tuple(make_loader(dataset, indices, batch_size=job.batch_size, shuffle=True, seed=None)
                    for indices in (splits.retain, splits.forget, splits.val))
    seed_everything(job.seed)
    return torch, net, loaders


def _save(torch, model, path: Path) -> None:
    from safetensors.torch import save_file

    from unlearning_challenge.atomic import atomic_path

    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path, durable=False) as tmp:  # read at once by the trusted side, then deleted
        save_file(state, str(tmp))


def main(argv: list[str]) -> int:
    job_path, ctrl_fd, go_fd = argv[0], int(argv[1]), int(argv[2])
    if len(argv) > 3:
        from unlearning_challenge.runner.guardian import die_with

        die_with(int(argv[3]))
    job = Job.read(job_path)
    stage = Stage.SETUP
    try:
        confinement = _confine(job) if job.sandbox else "disabled by the phase config"
        from unlearning_challenge.runner.proccap import install_run_filter

        torch, net, loaders = _setup(job)
        run_filter = install_run_filter()  # after the setup: nothing answers it yet
        send(ctrl_fd, Event.READY, pass_fd=run_filter.listener, confinement=confinement,
             process_cap=run_filter.process_cap, network=run_filter.network)
        if run_filter.listener is not None:
            os.close(run_filter.listener)  # the trusted side holds it now
        if os.read(go_fd, 16).strip() != b"go":
            return 3
        os.close(go_fd)
        stage = Stage.IMPORT
        unlearning = _import_submission(Path(job.submission))
        stage = Stage.CALL
        returned = unlearning(net, *loaders)
        stage = Stage.RETURN
        if returned is None:
            model = net
        elif isinstance(returned, torch.nn.Module):
            model = returned
        else:
            raise TypeError(
                f"unlearning returned a {type(returned).__name__}; return the model (or None after updating net in place)"
            )
        _save(torch, model, Path(job.output))
    except BaseException as exc:  # report everything, SystemExit included
        tb = traceback.format_exc()
        send(ctrl_fd, Event.ERROR, stage=stage.value, message=f"{type(exc).__name__}: {exc}", traceback=tb[-8000:])
        return 1
    send(ctrl_fd, Event.DONE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
