"""Static checks on every lesson notebook (notebooks/[0-9]*.ipynb), without running it."""
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
LESSONS = sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))

QUICK_DEFAULT = re.compile(r"^\s*QUICK\s*=\s*False\s*(#.*)?$", re.M)
PIP_MAGIC = re.compile(r"^\s*[!%]\s*(pip3?|conda|mamba)\b|^\s*!.*\s-m\s+pip\b", re.M)
ASSERT = re.compile(r"^\s*assert\b", re.M)
FENCE = re.compile(r"^\s*(```|~~~)")
H1 = re.compile(r"^ {0,3}#(\s|$)")

lesson = pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)


def _read(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return nb


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _h1_count(markdown: str) -> int:
    count, in_fence = 0, False
    for line in markdown.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and H1.match(line):
            count += 1
    return count


@lesson
def test_no_stored_outputs(path):
    nb = _read(path)
    dirty = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]
    assert not dirty, f"cells {dirty} have outputs or execution counts: run nbstripout {path.name}"


@lesson
def test_kernelspec_is_python3(path):
    nb = _read(path)
    name = nb.metadata.get("kernelspec", {}).get("name")
    assert name == "python3", f"kernelspec name is {name!r}, must be 'python3'"


@lesson
def test_one_parameters_cell_with_quick_false(path):
    nb = _read(path)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{len(tagged)} cells tagged 'parameters'; need exactly one"
    cell = tagged[0]
    assert cell.cell_type == "code", "the 'parameters' cell must be a code cell"
    assert QUICK_DEFAULT.search(cell.source), "the 'parameters' cell must set QUICK = False"


@lesson
def test_single_h1_in_first_markdown_cell(path):
    nb = _read(path)
    markdown = [c for c in nb.cells if c.cell_type == "markdown"]
    assert markdown, "no markdown cell"
    assert _h1_count(markdown[0].source) == 1, "the first markdown cell must hold exactly one H1"
    later = [i for i, c in enumerate(markdown[1:], start=1) if _h1_count(c.source)]
    assert not later, f"markdown cells {later} (counting markdown only) have a second H1"


@lesson
def test_no_pip_install_cells(path):
    nb = _read(path)
    bad = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and PIP_MAGIC.search(c.source)]
    assert not bad, f"cells {bad} install packages (!pip/%pip); the lock installs everything"


@lesson
def test_has_an_assert(path):
    nb = _read(path)
    assert any(ASSERT.search(c.source) for c in _code_cells(nb)), "no code cell has an assert"


# ---- the course map (notebooks/README.md) ------------------------------------------------------------
MAP_ROW = re.compile(r"^\| (\d\d) \| `(\w+)` \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", re.M)


def test_the_course_map_lists_every_lesson_in_order_with_time_and_prerequisites():
    rows = MAP_ROW.findall((NOTEBOOKS / "README.md").read_text())
    assert [name for _, name, *_ in rows] == [p.stem for p in LESSONS], "notebooks/README.md must list every lesson, in order"
    known = {num for num, *_ in rows}
    for num, name, time, needs, _ in rows:
        assert name.startswith(num) and re.search(r"\d+ min", time), f"{name}: a number and a time"
        for ref in re.findall(r"\b\d\d\b", needs):
            assert ref in known and ref < num, f"{name} needs {ref}, which must be an earlier lesson"


def test_the_readme_table_lists_every_lesson():
    text = (ROOT / "README.md").read_text()
    missing = [p.stem for p in LESSONS if f"`{p.stem}`" not in text]
    assert not missing, f"README.md's lessons table lacks {missing}"
