"""The entry script of each program zip: one template, rendered with the module it runs.

The platforms run a program as its ``metadata`` command says
(``python3 $program/ingestion.py ...``, ``python3 $program/score.py ...``); the build
writes that script into the zip, beside the vendored package. The two scripts differ
only by the package module whose ``main(argv)`` they call.
"""

from __future__ import annotations

from dataclasses import dataclass

import jinja2

__all__ = ["ENTRY_SCRIPTS", "EntryScript", "entry_script"]


@dataclass(frozen=True)
class EntryScript:
    """What a program zip's entry script is called and which module of the package it runs."""

    file_name: str  # at the zip's root, as the program's `metadata` command names it
    module: str  # unlearning_challenge.<module> holds main(argv) -> exit code


# One entry script per program kind (the keys of a competition task that name a program folder).
ENTRY_SCRIPTS = {
    "ingestion_program": EntryScript("ingestion.py", "ingestion"),
    "scoring_program": EntryScript("score.py", "scoring"),
}

_TEMPLATE = '''\
"""The {{ module }} program's entry point, run by the platform as the `metadata` command says.

Both platforms run it the same way (no shell):

    python3 $program/<this file> --input $input --output $output ...

CodaLab v1 substitutes host paths (cwd = the run folder, PYTHONPATH may hold the
submission); Codabench substitutes /app/... paths (cwd = this folder, no
PYTHONPATH). Neither matters here: every path comes in as an argument and the
package is found next to this file.

Where the package comes from, first match wins:
1. ``unlearning_challenge/`` beside this file (``make bundle`` vendors it into
   the program zip, so the zip runs on its own on the competition image);
2. the installed package (a repository checkout with ``pip install -e .``,
   or the competition image);
3. ``../src`` when run from a repository checkout without installing.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# First match wins: the package beside this file, the installed one, ../src of a checkout.
sys.path.insert(0, HERE)
sys.path.append(os.path.join(os.path.dirname(HERE), "src"))

if __name__ == "__main__":
    try:
        from unlearning_challenge.{{ module }} import main
    except ImportError as error:
        sys.stderr.write(
            f"{{ module }}: cannot import unlearning_challenge.{{ module }} ({error}); the program zip must hold "
            "the package (build it with `make bundle`) or the package must be installed\\n"
        )
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
'''

# A Python script, not HTML: nothing to escape; the module name is checked before rendering.
_ENVIRONMENT = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def entry_script(module: str) -> str:
    """The text of the script that runs ``unlearning_challenge.<module>.main(sys.argv[1:])``."""
    if not module.isidentifier():
        raise ValueError(f"module must be a module name of the package (e.g. 'ingestion'), got {module!r}")
    return _ENVIRONMENT.from_string(_TEMPLATE).render(module=module)
