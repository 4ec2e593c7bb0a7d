"""Hints added to a failed run's message where code carried over from the 2023 Kaggle edition breaks.

The trusted side calls :func:`run_hint` on the worker's error message
(``"ExceptionType: text"``) and the stage it failed in (``setup``, ``import``,
``call``, ``return``), and appends what it returns to the run's message.
"""

from __future__ import annotations

import re

from unlearning_challenge.data.dataset import BATCH_KEYS

PACKAGES_PAGE = "starting_kit/README.md (section 'What a run has')"

_UNPACKING = re.compile(r"^ValueError: (too many|not enough) values to unpack")
_INTEGER_KEY = re.compile(r"^KeyError: \d+$")
_DICT_ATTRIBUTE = re.compile(r"^AttributeError: 'dict' object has no attribute")
_MISSING_MODULE = re.compile(r"^(?:ModuleNotFoundError|ImportError): No module named '([^']+)'")
_UNDEFINED_NAME = re.compile(r"^NameError: name '([^']+)' is not defined")
# What a refused socket() says (runner/proccap.py): OSError, or urllib's and requests' wrappers of it.
_NO_NETWORK = re.compile(r"\[Errno 97\]|Address family not supported by protocol")


def batch_hint() -> str:
    keys = ", ".join(f"'{key}'" for key in BATCH_KEYS)
    return (f"hint: batches are dicts, not (image, label) tuples, with keys {keys}: "
            "the input is batch['image'] and the label batch['age_group']")


def kaggle_path_hint() -> str:
    return ("hint: there are no /kaggle folders here: the data come only through the three loaders, and a run "
            "may write only in its working directory (its run folder, which is also $HOME) and in $TMPDIR "
            "(tempfile's default folder); write there instead of /kaggle/tmp or /kaggle/working")


def missing_module_hint(name: str) -> str:
    return (f"hint: there is no package {name!r} here; the packages a submission can import are listed in "
            f"{PACKAGES_PAGE}; a module of your own must be a file in the submission folder, next to unlearning.py")


def undefined_name_hint(name: str) -> str:
    if name == "DEVICE":
        return ("hint: the Kaggle notebooks set DEVICE in their first cell; unlearning.py runs on its own, so "
                "define it there, e.g. DEVICE = next(net.parameters()).device inside unlearning()")
    return (f"hint: unlearning.py runs on its own, without a notebook's other cells: "
            f"import or define {name!r} in unlearning.py")


def network_hint() -> str:
    return ("runs have no network: socket() is refused for every address family but AF_UNIX, so nothing can be "
            "downloaded or sent; ship what unlearning() needs (weights, files) in the submission folder")


def run_hint(message: str, stage: str | None) -> str:
    """One hint for a run that failed with ``message`` in ``stage``, or ""."""
    message = message.strip()
    if stage == "call" and any(p.search(message) for p in (_UNPACKING, _INTEGER_KEY, _DICT_ATTRIBUTE)):
        return batch_hint()
    if _NO_NETWORK.search(message):
        return network_hint()
    if "/kaggle" in message:
        return kaggle_path_hint()
    if stage in ("import", "call") and (found := _MISSING_MODULE.search(message)):
        return missing_module_hint(found.group(1).split(".")[0])
    if stage in ("import", "call") and (found := _UNDEFINED_NAME.search(message)):
        return undefined_name_hint(found.group(1))
    return ""
