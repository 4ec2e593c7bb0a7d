"""Forks without end: every child stays alive; counts what it holds and what was refused."""

import errno
import os
import time


def unlearning(net, retain_loader, forget_loader, val_loader):
    held, refused = 0, 0
    deadline = time.monotonic() + 60
    while held < 3000 and refused < 50 and time.monotonic() < deadline:
        try:
            pid = os.fork()
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                raise
            refused += 1
            continue
        if pid == 0:
            time.sleep(300)
            os._exit(0)
        held += 1
    print(f"held {held} processes; refused {refused}", flush=True)
    return net
