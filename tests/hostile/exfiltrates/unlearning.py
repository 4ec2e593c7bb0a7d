"""Tries every way out of a private phase with a marker built from a retain image.

The network (TCP and UDP to the loopback listeners named in ``listeners.json``, UDP
over IPv6), what it prints, its stderr, the ingestion's own stderr through /proc,
files named after the marker, and its end, chosen by ``ending.txt``: ``return`` (the
model), ``raise`` (an exception class named after the marker, with the marker as its
message), ``exit`` (exit status 37) or ``network`` (a TCP connection it does not catch).
"""

import json
import os
import socket
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PREFIX = "LEAKMARK"


def _marker(retain_loader) -> str:
    image = next(iter(retain_loader))["image"][0].flatten()[:16]
    return PREFIX + "_".join(str(int(abs(float(v)) * 1000)) for v in image)


def _send(marker: str) -> list[str]:
    ports = json.loads((HERE / "listeners.json").read_text())
    attempts = [("tcp", socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1"),
                ("udp", socket.AF_INET, socket.SOCK_DGRAM, "127.0.0.1"),
                ("udp6", socket.AF_INET6, socket.SOCK_DGRAM, "::1")]
    results = []
    for name, family, kind, host in attempts:
        if name not in ports:
            continue
        try:
            with socket.socket(family, kind) as sock:
                sock.settimeout(2)
                sock.connect((host, ports[name]))
                sock.sendall(marker.encode())
            results.append(f"{name}: SENT")
        except OSError as exc:
            results.append(f"{name}: blocked ({exc})")
    return results


def _parents() -> list[int]:
    pids, pid = [], os.getpid()
    for _ in range(4):
        with open(f"/proc/{pid}/status") as f:
            pid = int(next(line.split()[1] for line in f if line.startswith("PPid:")))
        if pid <= 1:
            break
        pids.append(pid)
    return pids


def _write_to_parents(marker: str) -> list[str]:
    results = []
    for pid in _parents():
        for fd in (1, 2):
            try:
                with open(f"/proc/{pid}/fd/{fd}", "w") as f:
                    f.write(f"{marker}\n")
                results.append(f"/proc/{pid}/fd/{fd}: WROTE")
            except OSError as exc:
                results.append(f"/proc/{pid}/fd/{fd}: blocked ({type(exc).__name__})")
    return results


def unlearning(net, retain_loader, forget_loader, val_loader):
    marker = _marker(retain_loader)
    for line in _send(marker) + _write_to_parents(marker):
        print(line)
    print(marker)
    sys.stderr.write(f"{marker}\n")
    sys.stdout.flush()
    sys.stderr.flush()
    for folder in (Path.cwd(), Path(os.environ.get("TMPDIR", "/tmp"))):
        try:
            (folder / marker).write_text(marker)
        except OSError:
            pass
    ending = (HERE / "ending.txt").read_text().strip()
    if ending == "return":
        return net
    if ending == "exit":
        os._exit(37)
    if ending == "network":
        port = json.loads((HERE / "listeners.json").read_text())["tcp"]
        socket.create_connection(("127.0.0.1", port), timeout=2).sendall(marker.encode())
    raise type(marker, (RuntimeError,), {})(marker)
