"""Prints facts about the process it runs in, so that tests can compare how workers start."""

import json
import os
import signal
import sys

import torch


def _cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()


def unlearning(net, retain_loader, forget_loader, val_loader):
    facts = {
        "own_session": os.getsid(0) == os.getpid(),
        "own_group": os.getpgid(0) == os.getpid(),
        "cwd_is_home": os.getcwd() == os.environ.get("HOME"),
        "env_keys": sorted(os.environ),
        "path0_is_cwd": sys.path[0] == os.getcwd(),
        "dont_write_bytecode": sys.dont_write_bytecode,
        "stdin": os.readlink("/proc/self/fd/0"),
        "open_fds": len(os.listdir("/proc/self/fd")),
        "sigint_handler": repr(signal.getsignal(signal.SIGINT)),
        "torch_threads": torch.get_num_threads(),
        "parent_is_ingestion": b"unlearning_challenge.ingestion" in _cmdline(os.getppid()),
    }
    print("FACTS " + json.dumps(facts, sort_keys=True))
    print("unbuffered", end="")  # must reach the output tail even without a newline or a flush
    return net
