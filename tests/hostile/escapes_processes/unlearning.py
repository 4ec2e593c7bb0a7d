"""Starts processes meant to outlive the run: in its group, in a new session, and a double-forked daemon."""

import os
import subprocess
import sys
import time

MARKER = "unlearning-escape-marker"


def _daemon():
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execvp(sys.executable, [sys.executable, "-c", f"import time; time.sleep(10**6)  # {MARKER}"])
        os._exit(0)


def unlearning(net, retain_loader, forget_loader, val_loader):
    code = f"import time; time.sleep(10**6)  # {MARKER}"
    subprocess.Popen([sys.executable, "-c", code])
    subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    _daemon()
    time.sleep(0.5)
    return net
