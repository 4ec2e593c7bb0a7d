"""Private phases keep their data private: no network for any run, and with ``participant_output: hidden``
nothing a submission controls reaches what a participant can read.

The end-to-end tests run ``local-score`` (ingestion then scoring, each in its own process) on the
committed Check data with ``tests/hostile/exfiltrates``, which builds a marker from a retain image
and tries every way out with it: TCP and UDP to loopback listeners (and UDP over IPv6), its stdout
and stderr, the ingestion's descriptors through /proc, files named after it, an exception class
named after it, and its exit status.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from unlearning_challenge.artifacts import IngestionManifest, ModelFamily, ArtifactError, read_family, write_family
from unlearning_challenge.config import ConfigError, ParticipantOutput, config_from_dict
from unlearning_challenge.failures import Failure
from unlearning_challenge.runner.disclosure import for_participants
from unlearning_challenge.runner.hints import run_hint
from unlearning_challenge.artifacts import RunRecord, RunStatus
from unlearning_challenge.sealing import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, SealingError, make_keys
from unlearning_challenge.scoring.program import ScoringError, read_inputs

EXFILTRATES = ROOT / "tests" / "hostile" / "exfiltrates"
CHECK_DATA = (ROOT / "input_data", ROOT / "reference_data")
PREFIX = "LEAKMARK"
SHOWN, HIDDEN = ParticipantOutput.SHOWN, ParticipantOutput.HIDDEN


# --------------------------------------------------------------------------- no network (no ingestion)


def _in_filtered_child(probe: str) -> dict:
    """Run ``probe`` (Python source defining ``result``, a dict) in a forked child after the run filter."""
    code = f"""
import json, os, socket, sys, threading, ctypes
from unlearning_challenge.runner.proccap import install_run_filter
run_filter = install_run_filter()
{probe}
result["network"] = run_filter.network
print(json.dumps(result))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_run_filter_refuses_every_socket_family_but_unix():
    result = _in_filtered_child("""
result = {}
for name in ("AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"):
    try:
        socket.socket(getattr(socket, name), socket.SOCK_DGRAM if name != "AF_PACKET" else socket.SOCK_RAW).close()
        result[name] = "open"
    except OSError as exc:
        result[name] = exc.errno
socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()
a, b = socket.socketpair()
a.sendall(b"x"); result["socketpair"] = b.recv(1).decode()
thread = threading.Thread(target=lambda: None); thread.start(); thread.join()
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)
result["io_uring_setup"] = libc.syscall(425, 4, params), ctypes.get_errno()
""")
    assert {result[name] for name in ("AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET")} == {97}  # EAFNOSUPPORT
    assert result["socketpair"] == "x"
    assert result["io_uring_setup"] == [-1, 97]
    assert result["network"].startswith("no network (seccomp")


def test_a_run_that_needs_the_network_is_told_why():
    hint = run_hint("URLError: <urlopen error [Errno 97] Address family not supported by protocol>", "call")
    assert hint.startswith("runs have no network: socket() is refused for every address family but AF_UNIX")


# --------------------------------------------------------------------------- the setting


def test_participant_output_defaults_to_hidden_for_any_data_but_synthetic():
    assert config_from_dict({"name": "x"}).participant_output == SHOWN
    assert config_from_dict({"name": "x", "dataset": {"kind": "kaggle"}}).participant_output == HIDDEN
    assert config_from_dict({"name": "x", "dataset": {"kind": "csv"},
                             "ingestion": {"participant_output": "shown"}}).participant_output == SHOWN
    with pytest.raises(ConfigError, match="'ingestion.participant_output' must be shown or hidden, got 'secret'"):
        config_from_dict({"name": "x", "ingestion": {"participant_output": "secret"}})


def test_the_phases_say_what_participants_read():
    from unlearning_challenge.config import load_config

    assert load_config(ROOT / "phases" / "default.yaml").participant_output == SHOWN
    assert load_config(ROOT / "input_data" / "phase.yaml").participant_output == SHOWN
    for name in ("challenge.yaml", "final.yaml"):
        assert load_config(ROOT / "phases" / name).participant_output == HIDDEN


# --------------------------------------------------------------------------- what a hidden record keeps


def _failed_record(**fields) -> RunRecord:
    values = dict(index=3, seed=1000003, status=RunStatus.CRASHED, seconds=1.5, cpu_seconds=2.0,
                  message=f"{PREFIX}Error: {PREFIX} 140 137 (inside unlearning())", failure=Failure.RAISED_IN_CALL,
                  traceback_tail=f"Traceback ... {PREFIX}", output_tail=f"{PREFIX} 1 2 3", output_bytes=4096,
                  exit_code=37, confinement="landlock", process_cap="seccomp supervisor",
                  extra={"refused_process_creations": 137})
    return RunRecord(**{**values, **fields})


def test_a_hidden_record_keeps_only_what_the_trusted_side_wrote():
    record = _failed_record()
    assert for_participants(record, SHOWN) is record
    hidden = for_participants(record, HIDDEN)
    text = json.dumps(hidden.to_json())
    assert PREFIX not in text and "137" not in text and "37" not in str(hidden.exit_code)
    assert hidden.message.startswith("the submission raised an exception inside unlearning() (details withheld")
    assert (hidden.index, hidden.seed, hidden.status, hidden.seconds, hidden.cpu_seconds) == (3, 1000003, "crashed", 1.5, 2.0)
    assert (hidden.output_tail, hidden.traceback_tail, hidden.output_bytes, hidden.exit_code, hidden.extra) == (
        "", "", None, None, {})
    assert (hidden.confinement, hidden.process_cap, hidden.failure) == ("landlock", "seccomp supervisor", "raised_in_call")


def test_a_hidden_record_keeps_the_trusted_time_limit_message_and_never_an_unknown_failure_text():
    timed_out = _failed_record(status=RunStatus.TIMEOUT, failure=Failure.TIMED_OUT,
                               message="killed after 9.0 s: past the hard limit of 4.5 s per run")
    assert for_participants(timed_out, HIDDEN).message == timed_out.message
    unknown = for_participants(_failed_record(failure=None), HIDDEN)
    assert unknown.message.startswith("the run reported an error at no known stage (details withheld")


@pytest.mark.parametrize("written_as", [SHOWN, HIDDEN])
def test_hidden_scoring_quotes_no_run_text_whatever_the_ingestion_kept(tmp_path, written_as):
    from unlearning_challenge.artifacts import write_manifest

    record = for_participants(_failed_record(), written_as)
    write_manifest(tmp_path, IngestionManifest(status="failed", message=f"run 3 (seed 1000003) crashed: {record.message}",
                                               runs=(record,), participant_output=written_as.value))
    with pytest.raises(ScoringError) as hidden:
        read_inputs(tmp_path, tmp_path, disclosure=HIDDEN)
    assert PREFIX not in str(hidden.value)
    assert "run 3: crashed: the submission raised an exception inside unlearning()" in str(hidden.value)
    with pytest.raises(ScoringError) as shown:
        read_inputs(tmp_path, tmp_path, disclosure=SHOWN)
    assert (PREFIX in str(shown.value)) == (written_as == SHOWN)


def test_an_internal_error_during_hidden_runs_says_only_its_kind():
    from unlearning_challenge.ingestion import WithheldError, withheld_unless

    with pytest.raises(WithheldError) as hidden:
        with withheld_unless(HIDDEN):
            raise KeyError(f"{PREFIX}_key_from_a_state_dict")
    assert PREFIX not in str(hidden.value)
    assert str(hidden.value).startswith("internal error in the ingestion program (builtins.KeyError; details withheld")
    with pytest.raises(KeyError, match=PREFIX):
        with withheld_unless(SHOWN):
            raise KeyError(f"{PREFIX}_key_from_a_state_dict")


# --------------------------------------------------------------------------- sealed arrays


def _family(n: int = 3, e: int = 4, c: int = 10) -> ModelFamily:
    rng = np.random.default_rng(0)
    return ModelFamily(forget_logits=rng.normal(size=(n, e, c)).astype(np.float32),
                       forget_labels=np.arange(e) % c, forget_image_ids=np.arange(e),
                       retain_accuracy=np.full(n, 0.9), test_accuracy=np.full(n, 0.8), forget_accuracy=np.full(n, 0.7),
                       seconds=np.ones(n), seeds=np.arange(n))


def test_sealed_arrays_open_only_with_their_reference_key(tmp_path):
    inputs, reference, other = tmp_path / "input", tmp_path / "reference", tmp_path / "other"
    for folder in (inputs, reference, other):
        folder.mkdir()
    make_keys(inputs, reference)
    assert oct((reference / PRIVATE_KEY_FILE).stat().st_mode & 0o777) == "0o600"
    family = _family()
    sha = write_family(tmp_path / "unlearned.npz.sealed", family, sealed_for=inputs)
    sealed = (tmp_path / "unlearned.npz.sealed").read_bytes()
    assert not sealed.startswith(b"PK") and family.forget_logits.tobytes()[:16] not in sealed
    opened = read_family(tmp_path / "unlearned.npz.sealed", expected_sha256=sha, what="ingestion output",
                         unsealed_with=reference)
    np.testing.assert_array_equal(opened.forget_logits, family.forget_logits)
    constant = ModelFamily(**{**vars(family), "forget_logits": np.zeros_like(family.forget_logits)})
    write_family(tmp_path / "constant.sealed", constant, sealed_for=inputs)
    assert (tmp_path / "constant.sealed").stat().st_size == len(sealed)  # the size says nothing of the values
    with pytest.raises(ArtifactError, match="ingestion output: unlearned.npz.sealed is sealed, but the reference data "
                                            "hold no sealing_key: score it with the reference data whose input data "
                                            "sealed it"):
        read_family(tmp_path / "unlearned.npz.sealed", expected_sha256=sha, what="ingestion output",
                    unsealed_with=other)
    make_keys(other, other)
    with pytest.raises(ArtifactError, match="cannot be opened with the reference data's sealing_key: it was sealed "
                                            "for other reference data, or altered"):
        read_family(tmp_path / "unlearned.npz.sealed", expected_sha256=sha, what="ingestion output",
                    unsealed_with=other)


def test_a_key_pair_is_never_replaced_by_accident(tmp_path):
    make_keys(tmp_path, tmp_path)
    public = (tmp_path / PUBLIC_KEY_FILE).read_bytes()
    with pytest.raises(SealingError, match="a sealing key already exists .* pass --replace to make a new pair anyway"):
        make_keys(tmp_path, tmp_path)
    make_keys(tmp_path, tmp_path, replace=True)
    assert (tmp_path / PUBLIC_KEY_FILE).read_bytes() != public


# --------------------------------------------------------------------------- end to end (ingestion subprocesses)


class Listeners:
    """TCP and UDP listeners on 127.0.0.1 and a UDP one on ::1 (where IPv6 is up), recording what arrives."""

    def __init__(self):
        self.received: list[tuple[str, bytes]] = []
        self.ports: dict[str, int] = {}
        self._sockets = []
        for name, family, kind, host in (("tcp", socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1"),
                                         ("udp", socket.AF_INET, socket.SOCK_DGRAM, "127.0.0.1"),
                                         ("udp6", socket.AF_INET6, socket.SOCK_DGRAM, "::1")):
            try:
                sock = socket.socket(family, kind)
                sock.bind((host, 0))
            except OSError:
                continue
            if kind == socket.SOCK_STREAM:
                sock.listen(8)
            sock.settimeout(0.2)
            self.ports[name] = sock.getsockname()[1]
            self._sockets.append((name, sock))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            for name, sock in self._sockets:
                try:
                    if sock.type == socket.SOCK_STREAM:
                        connection, _ = sock.accept()
                        with connection:
                            connection.settimeout(1)
                            self.received.append((name, connection.recv(65536)))
                    else:
                        self.received.append((name, sock.recv(65536)))
                except OSError:
                    continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for _, sock in self._sockets:
            sock.close()


@pytest.fixture(scope="module")
def listeners():
    found = Listeners()
    assert {"tcp", "udp"} <= set(found.ports)
    yield found
    found.close()


@pytest.fixture(scope="module")
def sealed_check_data(tmp_path_factory):
    """The Check phase's data with a sealing key pair, as a private phase's data have."""
    root = tmp_path_factory.mktemp("sealed_check")
    shutil.copytree(ROOT / "input_data", root / "input_data")
    shutil.copytree(ROOT / "reference_data", root / "reference_data")
    make_keys(root / "input_data", root / "reference_data")
    return root / "input_data", root / "reference_data"


def _local_score(tmp_path: Path, listeners: Listeners, data: tuple[Path, Path], ending: str, output: str,
                 num_models: int = 4) -> tuple[subprocess.CompletedProcess, Path]:
    """``local-score`` of the exfiltrating submission ending with ``ending``; its result and output folder."""
    submission = tmp_path / "submission"
    shutil.copytree(EXFILTRATES, submission)
    (submission / "listeners.json").write_text(json.dumps(listeners.ports))
    (submission / "ending.txt").write_text(ending)
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "unlearning_challenge", "local-score", "--submission", str(submission),
         "--input-data", str(data[0]), "--reference-data", str(data[1]), "--num-models", str(num_models),
         "--no-time-limit", "--output", str(out), "--participant-output", output],
        capture_output=True, text=True, timeout=900, cwd=ROOT)
    return done, out


def _every_file_and_stream(out: Path, done: subprocess.CompletedProcess) -> dict[str, bytes]:
    found = {"stdout": done.stdout.encode(), "stderr": done.stderr.encode()}
    for path in sorted(out.rglob("*")):
        found[str(path.relative_to(out))] = b"" if path.is_dir() else path.read_bytes()
    return found


def _assert_nothing_leaked(out: Path, done: subprocess.CompletedProcess, listeners: Listeners) -> None:
    leaks = [name for name, data in _every_file_and_stream(out, done).items()
             if PREFIX.encode() in data or PREFIX in name]
    assert not leaks, leaks
    assert listeners.received == []


def _runs(out: Path) -> list[dict]:
    return json.loads((out / "res" / "ingestion.json").read_text())["runs"]


@pytest.mark.ingestion
def test_a_hidden_run_that_succeeds_leaks_nothing_and_its_arrays_are_sealed(tmp_path, listeners, sealed_check_data):
    done, out = _local_score(tmp_path, listeners, sealed_check_data, "return", "hidden")
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_nothing_leaked(out, done, listeners)
    manifest = json.loads((out / "res" / "ingestion.json").read_text())
    assert manifest["participant_output"] == "hidden" and manifest["arrays_sealed"] is True
    assert sorted(p.name for p in (out / "res").iterdir()) == ["ingestion.json", "unlearned.npz.sealed"]
    assert all(run["confinement"].endswith("no network (seccomp: socket() refused for every family but AF_UNIX, "
                                            "io_uring refused)") for run in manifest["runs"])
    assert all(run["output_tail"] == "" and "output_bytes" not in run for run in manifest["runs"])
    scores = json.loads((out / "scores" / "scores.json").read_text())
    assert 0 <= scores["score"] <= 1 and "epsilons" not in scores
    assert "the page shows no plot of single forget examples" in (out / "scores" / "detailed_results.html").read_text()


def _failed_hidden_run(tmp_path: Path, listeners: Listeners, ending: str) -> tuple[subprocess.CompletedProcess, dict]:
    """``local-score`` under hidden on the Check data of a submission that fails with ``ending``: it
    fails, nothing leaked; its result and its one run's record."""
    done, out = _local_score(tmp_path, listeners, CHECK_DATA, ending, "hidden")
    assert done.returncode == 1
    _assert_nothing_leaked(out, done, listeners)
    (run,) = _runs(out)
    return done, run


@pytest.mark.ingestion
def test_a_hidden_run_that_raises_leaks_neither_its_output_nor_its_exception(tmp_path, listeners):
    done, run = _failed_hidden_run(tmp_path, listeners, "raise")
    assert (run["status"], run["failure"]) == ("crashed", "raised_in_call")
    assert run["message"].startswith("the submission raised an exception inside unlearning() (details withheld")
    assert ("scoring failed: the submission failed during ingestion: run 0 (seed 1000000) crashed: the submission "
            "raised an exception inside unlearning()") in done.stderr


@pytest.mark.ingestion
def test_a_hidden_run_does_not_report_the_exit_status_it_chose(tmp_path, listeners):
    done, run = _failed_hidden_run(tmp_path, listeners, "exit")
    assert (run["status"], run["failure"], run["exit_code"]) == ("crashed", "exited", None)
    assert "37" not in run["message"] and "exit code 37" not in done.stderr


@pytest.mark.ingestion
def test_a_shown_run_shows_its_output_and_why_the_network_failed(tmp_path, listeners):
    done, out = _local_score(tmp_path, listeners, CHECK_DATA, "network", "shown")
    assert done.returncode == 1
    (run,) = _runs(out)
    assert PREFIX in run["output_tail"] and "tcp: blocked ([Errno 97] Address family not supported" in run["output_tail"]
    assert "runs have no network: socket() is refused" in run["message"]
    assert run["traceback_tail"] and run["failure"] == "raised_in_call"
    assert listeners.received == []
