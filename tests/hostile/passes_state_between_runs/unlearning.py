"""Tries to leave state for later runs wherever it can write (shared memory, home, temp folders)."""

import os
import tempfile

NAME = "unlearning-stash-marker"


def _places():
    return ["/dev/shm", os.path.expanduser("~"), tempfile.gettempdir(), "/tmp", "/var/tmp", os.getcwd()]


def unlearning(net, retain_loader, forget_loader, val_loader):
    for place in _places():
        if os.path.exists(os.path.join(place, NAME)):
            raise RuntimeError(f"STASH FOUND in {place}: state passed from an earlier run")
    for place in _places():
        try:
            with open(os.path.join(place, NAME), "w") as f:
                f.write("state from an earlier run")
        except OSError:
            pass
    return net
