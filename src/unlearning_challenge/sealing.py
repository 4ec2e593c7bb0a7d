"""The ingestion's arrays sealed for the scoring program alone, in a phase that hides what runs control.

The ingestion output is what participants download (the platforms' "prediction
output"), and its arrays are functions of the private images that the submission
chose: the forget-set logits of every run (``[N, E, C]`` floats) and the per-example
losses could carry those images out. In a hidden phase the ingestion therefore seals
them (libsodium's sealed box: X25519 and XSalsa20-Poly1305) with the public key kept
in the input data; only the private key in the reference data, which only the
scoring program reads, opens them.

``make reference`` makes the key pair for a phase whose ``participant_output`` is
hidden; ``unlearning-challenge seal-keys`` makes one for existing data folders.
"""

from __future__ import annotations

from pathlib import Path

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from unlearning_challenge.atomic import write_bytes

PUBLIC_KEY_FILE = "sealing_key.pub"  # in the input data: the ingestion seals with it
PRIVATE_KEY_FILE = "sealing_key"  # in the reference data: the scoring program opens with it
SEALED_SUFFIX = ".sealed"


class SealingError(ValueError):
    """A key is missing or unreadable, or sealed arrays cannot be opened; the message says which and why."""


def make_keys(input_dir: Path, reference_dir: Path, *, replace: bool = False) -> None:
    """Write a new key pair: the public key into ``input_dir``, the private key into ``reference_dir``.

    Refuses to replace an existing pair unless ``replace`` (outputs sealed with the old
    pair could then no longer be scored).
    """
    existing = [p for p in (input_dir / PUBLIC_KEY_FILE, reference_dir / PRIVATE_KEY_FILE) if p.exists()]
    if existing and not replace:
        raise SealingError(f"a sealing key already exists ({', '.join(map(str, existing))}); outputs sealed with "
                           "it could no longer be scored with a new one: pass --replace to make a new pair anyway")
    private = PrivateKey.generate()
    write_bytes(reference_dir / PRIVATE_KEY_FILE, bytes(private), mode=0o600)
    write_bytes(input_dir / PUBLIC_KEY_FILE, bytes(private.public_key))


def has_public_key(input_dir: Path) -> bool:
    return (input_dir / PUBLIC_KEY_FILE).is_file()


def _read_key(path: Path, kind: type, what: str):
    try:
        return kind(path.read_bytes())
    except OSError as exc:
        raise SealingError(f"{what}: cannot read {path.name} ({exc.strerror or exc})") from None
    except (ValueError, TypeError, CryptoError):
        raise SealingError(f"{what}: {path.name} is not a 32-byte key; make a new pair with "
                           "`unlearning-challenge seal-keys --replace`") from None


def seal(data: bytes, input_dir: Path) -> bytes:
    """``data`` sealed with the input data's public key."""
    key = _read_key(input_dir / PUBLIC_KEY_FILE, PublicKey, "input data")
    return SealedBox(key).encrypt(data)


def unseal(sealed: bytes, reference_dir: Path, *, what: str) -> bytes:
    """Open ``sealed`` with the reference data's private key; ``what`` names the sealed file in errors."""
    path = reference_dir / PRIVATE_KEY_FILE
    if not path.is_file():
        raise SealingError(f"{what} is sealed, but the reference data hold no {PRIVATE_KEY_FILE}: score it with "
                           "the reference data whose input data sealed it")
    try:
        return SealedBox(_read_key(path, PrivateKey, "reference data")).decrypt(sealed)
    except CryptoError:
        raise SealingError(f"{what} cannot be opened with the reference data's {PRIVATE_KEY_FILE}: it was sealed "
                           "for other reference data, or altered") from None
