"""The packages a submission can import: the core dependencies and the ``participant`` extra.

Both ``make install`` (``.venv``) and the docker image install them.
``make packages`` (``python -m unlearning_challenge packages``) writes their
table, with the versions installed here, into ``starting_kit/README.md``
between ``<!-- packages-table:start -->`` and ``<!-- packages-table:end -->``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

DISTRIBUTION = "unlearning-challenge"
EXTRA = "participant"
IMPORT_NAMES = {"scikit-learn": "sklearn", "pyyaml": "yaml", "pillow": "PIL", "safetensors": "safetensors.torch",
                "pynacl": "nacl"}
START, END = "<!-- packages-table:start -->", "<!-- packages-table:end -->"


def participant_requirements() -> list[Requirement]:
    """The core requirements and those of the ``participant`` extra, from the installed metadata."""
    found = [Requirement(text) for text in metadata.requires(DISTRIBUTION) or []]
    wanted: dict[str, Requirement] = {}
    for r in found:  # a package both in the core and in the extra is listed once, with the core's range
        if r.marker is None or r.marker.evaluate({"extra": EXTRA}):
            wanted.setdefault(canonicalize_name(r.name), r)
    return list(wanted.values())


def import_name(requirement: Requirement) -> str:
    name = canonicalize_name(requirement.name)
    return IMPORT_NAMES.get(name, name.replace("-", "_"))


def markdown_table(requirements: list[Requirement]) -> str:
    """One row per package: name, import, required range, version installed here."""
    rows = ["| package | import | required | version (`make install`) |", "|---|---|---|---|"]
    for r in sorted(requirements, key=lambda r: canonicalize_name(r.name)):
        rows.append(f"| {canonicalize_name(r.name)} | `{import_name(r)}` | `{r.specifier}` | "
                    f"{metadata.version(r.name)} |")
    stamp = datetime.date.today().isoformat()
    note = (f"\nVersions as `make install` resolved them on {stamp} (Python {sys.version_info.major}."
            f"{sys.version_info.minor}); the image installs the same ranges. `make packages` rewrites this table.\n")
    return "\n".join(rows) + "\n" + note


def parse_table(text: str) -> dict[str, dict[str, str]]:
    """The README's table: package name -> {"import", "required", "version"}."""
    if START not in text or END not in text:
        raise ValueError(f"no {START} ... {END} markers")
    body = text.split(START, 1)[1].split(END, 1)[0]
    table = {}
    for line in body.splitlines():
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("package", "---"):
            table[cells[0]] = {"import": cells[1], "required": cells[2], "version": cells[3]}
    return table


def replace_table(readme: Path, table: str) -> None:
    from unlearning_challenge.atomic import write_text

    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no {START} ... {END} markers to put the table between")
    head, rest = text.split(START, 1)
    write_text(readme, f"{head}{START}\n{table}{END}{rest.split(END, 1)[1]}")


def add_packages_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``python -m unlearning_challenge packages``."""
    parser.add_argument("--readme", type=Path, default=Path("starting_kit/README.md"))
    return parser


def run_packages(args: argparse.Namespace) -> int:
    """Write the table of the packages a submission can import into the README."""
    replace_table(args.readme, markdown_table(participant_requirements()))
    print(f"wrote the packages table into {args.readme}")
    return 0
