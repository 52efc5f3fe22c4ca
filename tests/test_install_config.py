"""The install scaffolding agrees with itself: one lock, floors met, Binder files sane."""
import os
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "binder" / "requirements.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;=<>!~]+)$")

DIRECT = [
    "numpy", "numba", "plotly", "anywidget", "ipywidgets", "jupyterlab", "papermill",
    "pyyaml", "ipykernel", "tqdm", "pytest", "pytest-xdist", "hypothesis", "nbformat",
    "nbclient", "nbstripout", "playwright", "nbgitpuller",
]


def _lock_lines():
    lines = []
    for raw in LOCK.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _lock() -> dict[str, Version]:
    pins = {}
    for line in _lock_lines():
        m = PIN.match(line)
        assert m, f"not an exact pin: {line!r}"
        pins[canonicalize_name(m[1])] = Version(m[2])
    return pins


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_lock_pins_every_package_exactly():
    lines = _lock_lines()
    assert lines, "binder/requirements.txt pins nothing"
    bad = [line for line in lines if not PIN.match(line)]
    assert not bad, f"lines that are not exact `name==version` pins: {bad}"
    names = [canonicalize_name(PIN.match(line)[1]) for line in lines]
    dupes = {n for n in names if names.count(n) > 1}
    assert not dupes, f"pinned more than once: {sorted(dupes)}"
    banned = {"kslib", "pip", "setuptools", "wheel"} & set(names)
    assert not banned, f"must not be in the lock: {sorted(banned)}"


def test_lock_holds_every_direct_requirement():
    missing = [d for d in DIRECT if canonicalize_name(d) not in _lock()]
    assert not missing, f"direct requirements missing from the lock: {missing}"


def test_environment_yml_pins_equal_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "conda-forge" in env.get("channels", [])
    lock = _lock()
    checked, mismatched, unknown = 0, [], []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            assert dep.get("pip") == ["-e ."], f"pip section should only install the package: {dep}"
            continue
        m = re.match(r"^\s*([A-Za-z0-9._-]+)\s*(==?)\s*([^\s=]+)\s*$", dep)
        if not m:
            continue  # unpinned entry, e.g. `pip`
        name, version = canonicalize_name(m[1]), m[3]
        if name == "python":
            continue  # checked against binder/runtime.txt below
        checked += 1
        if name not in lock:
            unknown.append(name)
        elif Version(version) != lock[name]:
            mismatched.append(f"{name}: environment.yml {version} != lock {lock[name]}")
    assert checked, "environment.yml pins no package"
    assert not unknown, f"pinned in environment.yml but not in the lock: {unknown}"
    assert not mismatched, mismatched


def test_environment_yml_python_matches_runtime():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pythons = [d for d in env["dependencies"] if isinstance(d, str) and re.match(r"^python\s*=", d)]
    assert len(pythons) == 1, "environment.yml must pin python once"
    assert pythons[0].split("=")[-1].strip() == _runtime_minor()


def _requirements_from_pyproject():
    project = _pyproject()["project"]
    reqs = [("dependencies", r) for r in project.get("dependencies", [])]
    for extra, items in project.get("optional-dependencies", {}).items():
        reqs += [(f"extra {extra}", r) for r in items]
    return reqs


@pytest.mark.parametrize("where,req", _requirements_from_pyproject(), ids=lambda v: str(v))
def test_lock_meets_pyproject_floor(where, req):
    requirement = Requirement(req)
    if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
        pytest.skip(f"marker does not apply here: {requirement.marker}")
    lock = _lock()
    name = canonicalize_name(requirement.name)
    assert name in lock, f"{req} ({where}) is not in the lock"
    assert requirement.specifier.contains(lock[name], prereleases=True), (
        f"lock has {name}=={lock[name]}, which does not satisfy {req} ({where})"
    )


def test_pyproject_has_floors_only():
    for where, req in _requirements_from_pyproject():
        ops = {s.operator for s in Requirement(req).specifier}
        assert ops <= {">="}, f"{req} ({where}): pyproject.toml holds floors only; pin in the lock"


def _runtime_minor() -> str:
    text = (ROOT / "binder" / "runtime.txt").read_text().strip()
    m = re.fullmatch(r"python-(\d+\.\d+)", text)
    assert m, f"binder/runtime.txt should read like `python-3.11`, not {text!r}"
    return m[1]


def test_runtime_matches_requires_python_floor():
    floors = [s for s in SpecifierSet(_pyproject()["project"]["requires-python"]) if s.operator == ">="]
    assert len(floors) == 1, "requires-python needs one >= floor"
    floor = Version(floors[0].version)
    assert _runtime_minor() == f"{floor.major}.{floor.minor}"


def test_binder_scripts():
    post_build, start = ROOT / "binder" / "postBuild", ROOT / "binder" / "start"
    for script in (post_build, start):
        assert script.is_file(), f"{script} missing"
        assert os.access(script, os.X_OK), f"{script} is not executable"
    assert re.search(r"^\s*set\s+-[a-z]*e", post_build.read_text(), re.M), "postBuild lacks set -e"
    assert "pip install --no-deps -e ." in post_build.read_text()
    lines = [l.strip() for l in start.read_text().splitlines() if l.strip() and not l.strip().startswith("#")]
    assert lines and lines[-1] == 'exec "$@"', 'binder/start must end with exec "$@"'
    assert not (ROOT / ".binder").exists(), "both binder/ and .binder/ exist: repo2docker refuses"


def test_ci_runs_make_test():
    text = (ROOT / ".ci" / "run").read_text()
    code = [l for l in text.splitlines() if not l.strip().startswith("#")]
    assert any(re.match(r"^\s*make\s+test\b", l) for l in code), ".ci/run must call `make test`"


def test_readme_opens_with_make_lab_and_make_test():
    text = (ROOT / "README.md").read_text()
    m = re.search(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
    assert m, "README.md has no command block"
    block = m[1]
    assert "make lab" in block and "make test" in block, "first command block must hold make lab and make test"


def test_jupyterhub_guide_config_and_link_are_usable():
    """docs/jupyterhub.md: its z2jh config is valid YAML with the keys z2jh reads, and its nbgitpuller
    link opens the first lesson of this repository's layout."""
    import re
    from urllib.parse import parse_qs, urlparse
    text = (ROOT / "docs" / "jupyterhub.md").read_text()
    (block,) = re.findall(r"```yaml\n(.*?)```", text, re.S)
    su = yaml.safe_load(block)["singleuser"]
    assert su["defaultUrl"] == "/lab" and su["image"]["name"] and su["image"]["tag"]
    assert {"guarantee", "limit"} <= set(su["memory"]) and {"guarantee", "limit"} <= set(su["cpu"])
    assert su["extraEnv"]["KSLIB_QUICK"] == "1"
    (link,) = re.findall(r"https://hub\.example\.org/hub/user-redirect/git-pull\?\S+", text)
    q = parse_qs(urlparse(link).query)
    repo_dir = q["repo"][0].rstrip("/").rsplit("/", 1)[-1]
    assert q["urlpath"][0].startswith(f"lab/tree/{repo_dir}/")
    assert (ROOT / q["urlpath"][0].split(f"lab/tree/{repo_dir}/", 1)[1]).is_file()
    assert "--target-repo-dir" in text and canonicalize_name("nbgitpuller") in _lock()
