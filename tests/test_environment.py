"""The packages a submission can import: one list (pyproject.toml), installed here, and the starting kit's table."""

from __future__ import annotations

import importlib
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

from unlearning_challenge.platforms.environment import (
    import_name,
    markdown_table,
    parse_table,
    participant_requirements,
    replace_table,
)

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "starting_kit" / "README.md"
KAGGLE_IMPORTS = {"numpy", "scipy", "pandas", "scikit-learn", "tqdm", "matplotlib", "torch", "torchvision"}


def test_the_list_holds_what_kaggle_notebooks_import():
    names = {canonicalize_name(r.name) for r in participant_requirements()}
    assert KAGGLE_IMPORTS <= names
    assert not {"pytest", "ray", "nbformat"} & names  # other extras stay out


def test_every_package_of_the_list_is_installed_in_range_and_imports():
    for requirement in participant_requirements():
        installed = Version(metadata.version(requirement.name))
        assert requirement.specifier.contains(installed, prereleases=True), (requirement, installed)
        importlib.import_module(import_name(requirement))


def test_the_starting_kit_table_lists_every_package_with_its_range_and_a_version_in_it():
    table = parse_table(README.read_text())
    requirements = {canonicalize_name(r.name): r for r in participant_requirements()}
    assert set(table) == set(requirements), "run `make packages` to rewrite the table"
    for name, row in table.items():
        requirement = requirements[name]
        assert row["required"] == str(requirement.specifier), name
        assert row["import"] == import_name(requirement), name
        assert requirement.specifier.contains(Version(row["version"]), prereleases=True), name


def test_the_table_is_rewritten_between_its_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- packages-table:start -->\nold\n<!-- packages-table:end -->\nafter\n")
    replace_table(readme, markdown_table(participant_requirements()))
    text = readme.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "old" not in text
    assert set(parse_table(text)) == {canonicalize_name(r.name) for r in participant_requirements()}
