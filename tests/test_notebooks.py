"""Execute every lesson notebook (notebooks/[0-9]*.ipynb) with papermill, in quick mode.

The executed copies are written to tests/artifacts/<name> and kept for inspection; on a
failure papermill also puts a red "An Exception was encountered" cell at the top.
"""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "tests" / "artifacts"
LESSONS = sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))


@pytest.mark.notebook
def test_at_least_one_lesson_exists():
    # Guard: with no notebooks the parametrized test below would collect nothing and pass.
    assert LESSONS, f"no lesson notebooks found: expected {NOTEBOOKS}/[0-9]*.ipynb"


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", LESSONS, ids=lambda p: p.stem)
def test_lesson_executes(notebook: Path):
    import papermill as pm

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(
        str(notebook),
        str(ARTIFACTS / notebook.name),
        parameters={"QUICK": True},
        kernel_name="python3",  # ignore whatever kernelspec the file carries
        cwd=str(NOTEBOOKS),  # relative paths behave as in Jupyter
        execution_timeout=300,  # per cell, seconds
        progress_bar=False,
        store_widget_state=False,  # forwarded to nbclient; keeps artifacts small
    )
