"""The starting kit's walkthrough notebook runs from top to bottom on the committed Check phase."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def test_walkthrough_notebook_executes(tmp_path):
    notebook = nbformat.read(ROOT / "starting_kit" / "walkthrough.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
    )
    assert "forget_quality:" in outputs
    assert "'ok'" in outputs
