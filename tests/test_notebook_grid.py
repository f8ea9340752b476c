"""Tests of the notebook grid behind ``investigation run`` and of the golden notebooks' nbval guard.

Grid shape is checked against the profile files on disk and against hand-made
profiles whose outcome follows from the spec: one user reconnecting 7 times to
one instance exceeds the cap of 5 managers (spec 4.2) and gets 1011; a single
connection does not.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from investigation.cli import main
from investigation.notebook_grid import (
    isolation_pairs,
    notebook_grid,
    profiles_dir_exported,
    run_notebook_suite,
)
from investigation.profiles import PROFILES_DIR_ENV, ProfileError
from investigation.suite import SuiteInputError, build_grid

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
SHIPPED_PROFILES = sorted(path.stem for path in (REPO / "data" / "profiles").glob("*.toml"))

RECONNECTING = """description = "one user reconnecting 7 times to one instance"
[env]
ENVIRONMENT = "test"
[[clients]]
name = "tab"
user_id = "test-user-12345"
connections = 7
spacing_s = 10.0
hold_s = 4.0
"""
SINGLE = """description = "one connection"
[env]
ENVIRONMENT = "test"
[[clients]]
name = "tab"
user_id = "test-user-12345"
"""


@pytest.fixture()
def extra_profiles(tmp_path: Path) -> Path:
    directory = tmp_path / "profiles"
    directory.mkdir()
    (directory / "zz-reconnecting.toml").write_text(RECONNECTING)
    (directory / "zz-single.toml").write_text(SINGLE)
    return directory


def fixture_notebooks(directory: Path, parameters: dict[str, str]) -> Path:
    """Minimal notebooks named like the suite's, each declaring the given parameters."""
    directory.mkdir()
    for stem, source in parameters.items():
        cell = new_code_cell(source)
        cell.metadata["tags"] = ["parameters"]
        notebook = new_notebook(cells=[cell])
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(notebook, directory / f"{stem}.ipynb")
    return directory


def test_reproduce_runs_once_per_profile() -> None:
    grid = notebook_grid(notebooks=["01"])
    assert [entry.parameters for entry in grid] == [{"profile": name} for name in SHIPPED_PROFILES]
    assert {entry.stem for entry in grid} == {"01_reproduce"}


def test_profile_filter_narrows_the_reproduce_runs() -> None:
    grid = notebook_grid(notebooks=["01"], profiles=["staging-e2e", "local-debug"])
    assert [entry.slug for entry in grid] == ["profile=local-debug", "profile=staging-e2e"]


def test_isolation_pairs_are_the_failing_profiles(extra_profiles: Path) -> None:
    pairs = isolation_pairs(["local-debug", "zz-reconnecting", "zz-single"], extra_profiles)
    assert pairs == [("local-debug", "zz-reconnecting")]


def test_isolate_notebook_runs_over_the_computed_pairs(tmp_path: Path, extra_profiles: Path) -> None:
    notebook_dir = fixture_notebooks(tmp_path / "nb", {
        "01_reproduce": 'profile = "staging-e2e"\nvariant = "original"',
        "04_isolate": 'passing = "local-debug"\nfailing = "staging-e2e"',
        "06_postmortem": "",
    })
    grid = notebook_grid(profiles=["zz-single", "zz-reconnecting", "local-debug"], profiles_dir=extra_profiles,
                         notebook_dir=notebook_dir)
    by_stem = {(entry.stem, entry.slug) for entry in grid}
    assert by_stem == {
        ("01_reproduce", "profile=local-debug"),
        ("01_reproduce", "profile=zz-reconnecting"),
        ("01_reproduce", "profile=zz-single"),
        ("04_isolate", "failing=zz-reconnecting__passing=local-debug"),
        ("06_postmortem", "default"),
    }


def test_notebooks_missing_from_the_directory_are_left_out(tmp_path: Path) -> None:
    notebook_dir = fixture_notebooks(tmp_path / "nb", {"02_divergence": 'reference = "local-debug"'})
    assert [(entry.stem, entry.slug) for entry in notebook_grid(notebook_dir=notebook_dir)] == [
        ("02_divergence", "default")]


def test_unknown_parameter_is_rejected_before_anything_runs(tmp_path: Path) -> None:
    spec = {"01_reproduce": lambda profiles: [{"profil": "staging-e2e"}]}
    with pytest.raises(SuiteInputError, match="profil: not a declared parameter"):
        build_grid(NOTEBOOKS, spec, ["01"], None)


@pytest.mark.parametrize(
    ("notebooks", "profiles", "message"),
    [(["01"], ["no-such-profile"], "unknown profile 'no-such-profile'"),
     (["99"], None, "no notebook named '99'")],
)
def test_bad_input_writes_nothing(tmp_path: Path, notebooks: list[str], profiles: list[str] | None,
                                  message: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(SuiteInputError, match=message):
        run_notebook_suite(notebooks, profiles, jobs=1, out_dir=out, profiles_dir=None, progress=False)
    assert not out.exists()


def test_an_unknown_notebook_is_refused_before_any_worker_starts(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting the worker pool costs seconds; a misspelt notebook name must not wait for it."""
    import investigation.notebook_grid as notebook_grid_module

    def no_pool(*args: object) -> None:
        raise AssertionError("the worker pool started before the notebook names were checked")

    monkeypatch.setattr(notebook_grid_module, "worker_pool", no_pool)
    with pytest.raises(SuiteInputError, match="no notebook named '99'"):
        run_notebook_suite(["99"], None, jobs=1, out_dir=tmp_path / "out", profiles_dir=None, progress=False)


def test_an_invalid_profile_in_profiles_dir_fails_the_grid_check(extra_profiles: Path) -> None:
    (extra_profiles / "zz-broken.toml").write_text('description = "d"\ninstances = "many"\n')
    with pytest.raises(ProfileError, match="zz-broken.toml: instances"):
        notebook_grid(notebooks=["01"], profiles=["local-debug"], profiles_dir=extra_profiles)


def test_run_with_an_invalid_profile_is_bad_input_and_writes_nothing(
    tmp_path: Path, extra_profiles: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (extra_profiles / "zz-broken.toml").write_text('description = "d"\ninstances = "many"\n')
    out = tmp_path / "out"
    argv = ["run", "--notebook", "01", "--profile", "zz-broken", "--profiles-dir", str(extra_profiles),
            "--out", str(out)]
    assert main(argv) == 2
    assert "zz-broken.toml: instances" in capsys.readouterr().err
    assert not out.exists()


def test_profiles_dir_is_exported_and_restored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROFILES_DIR_ENV, "before")
    with profiles_dir_exported(tmp_path):
        assert os.environ[PROFILES_DIR_ENV] == str(tmp_path.resolve())
    assert os.environ[PROFILES_DIR_ENV] == "before"


def test_profiles_dir_reaches_the_notebook(tmp_path: Path, extra_profiles: Path) -> None:
    out = tmp_path / "out"
    failed = run_notebook_suite(["01"], ["zz-reconnecting"], jobs=1, out_dir=out, profiles_dir=extra_profiles,
                                progress=False)
    assert failed == []
    executed = nbformat.read(out / "01_reproduce" / "profile=zz-reconnecting.ipynb", as_version=4)
    key = next(cell for cell in executed.cells if "key-result" in cell.metadata.get("tags", []))
    assert key.outputs[0].text.startswith("zz-reconnecting/original: 1011: 2, open: 5 (7 connections)")
    assert {"index.html", "manifest.json"} <= {path.name for path in out.iterdir()}


# --- the goldens under nbval ----------------------------------------------------------------


def nbval(notebook: Path) -> subprocess.CompletedProcess[str]:
    sanitize = REPO / "tests" / "nbval_sanitize.cfg"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", str(notebook),
         "--nbval-sanitize-with", str(sanitize), "--rootdir", str(notebook.parent)],
        cwd=notebook.parent, env=env, capture_output=True, text=True, check=False, timeout=300,
    )


def tamper_one_number(notebook: nbformat.NotebookNode) -> int:
    """Add one to the connection count in the key-result output; return the cell's nbval number."""
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    number, cell = next((n, c) for n, c in enumerate(code_cells) if "key-result" in c.metadata.get("tags", []))
    output = cell.outputs[0]
    match = re.search(r"\((\d+) connections\)", output.text)
    assert match is not None
    output.text = output.text[: match.start(1)] + str(int(match.group(1)) + 1) + output.text[match.end(1):]
    return number


def test_nbval_passes_the_golden_and_fails_a_tampered_copy(tmp_path: Path) -> None:
    golden = nbformat.read(NOTEBOOKS / "01_reproduce.ipynb", as_version=4)
    untouched = tmp_path / "untouched" / "01_reproduce.ipynb"
    tampered = tmp_path / "tampered" / "01_reproduce.ipynb"
    for path in (untouched, tampered):
        path.parent.mkdir()
    nbformat.write(golden, untouched)
    tampered_cell = tamper_one_number(golden)
    nbformat.write(golden, tampered)
    assert nbval(untouched).returncode == 0
    failing = nbval(tampered)
    assert failing.returncode != 0
    assert f"FAILED 01_reproduce.ipynb::Cell {tampered_cell} " in failing.stdout
    assert "1 failed" in failing.stdout


# The parameters each chapter is committed with. `make run` executes the single-run chapters with their
# notebook's own parameters cell, and nbval compares a golden with itself: a golden saved from Jupyter Lab
# after trying another profile or variant would pass both and change what `make run` publishes.
COMMITTED_DEFAULTS = {
    "01_reproduce": {"profile": "staging-e2e", "variant": "original"},
    "02_divergence": {"profiles": None, "reference": "local-debug"},
    "03_hypotheses": {"profiles_dir": None, "detail_claim": "fix.v1"},
    "04_isolate": {"passing": "local-debug", "failing": "staging-e2e", "top_lines": 12},
    "05_variants": {"variant": "all", "tests_per_process": 60},
    "06_postmortem": {"reference": "local-debug"},
}


@pytest.mark.parametrize("stem", sorted(COMMITTED_DEFAULTS))
def test_each_golden_keeps_the_parameters_it_is_committed_with(stem: str) -> None:
    import ast

    import papermill

    declared = papermill.inspect_notebook(str(NOTEBOOKS / f"{stem}.ipynb"))
    values = {name: ast.literal_eval(spec["default"]) for name, spec in declared.items()}
    assert values == COMMITTED_DEFAULTS[stem], (
        f"notebooks/{stem}.ipynb's parameters cell changed: restore it (git checkout) or, if the change is meant, "
        "update COMMITTED_DEFAULTS and run make refresh")


def test_every_golden_has_its_committed_defaults() -> None:
    assert sorted(COMMITTED_DEFAULTS) == sorted(path.stem for path in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
