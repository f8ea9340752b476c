"""The notebook grid: which notebook runs with which parameters.

Usage::

    spec = {"02_compare": lambda profiles: [{"profile": p} for p in profiles or ["local"]]}
    grid = build_grid(Path("notebooks"), spec, notebook_filter=["02"], profile_filter=None)
    [entry.slug for entry in grid]        # ['profile=local']

A grid spec maps a notebook stem to a callable that receives the profile
filter (``None`` = every profile) and returns one parameter dict per run.
A notebook without a spec entry runs once with its default parameters.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import papermill

from investigation.suite.errors import SuiteInputError

GridSpec = Mapping[str, Callable[[Sequence[str] | None], list[dict[str, object]]]]

DEFAULT_SLUG = "default"
PAIR_SEPARATOR = "__"
MAX_SLUG_LENGTH = 120
_UNSAFE_SLUG_CHARS = re.compile(r"[^A-Za-z0-9._=-]+")


@dataclass(frozen=True)
class GridEntry:
    """One run of the grid: a source notebook and the parameters injected into it."""

    notebook: Path
    parameters: dict[str, object] = field(default_factory=dict)

    @property
    def stem(self) -> str:
        return self.notebook.stem

    @property
    def slug(self) -> str:
        return parameter_slug(self.parameters)


def parameter_slug(parameters: Mapping[str, object]) -> str:
    """File-name-safe name of a parameter set: sorted ``key=value`` pairs joined by ``__``.

    Strings appear as themselves, other values as JSON; characters outside
    ``[A-Za-z0-9._=-]`` become ``-``. No parameters give ``"default"``; a slug
    longer than 120 characters is cut and ends in a hash of the full one.
    """
    if not parameters:
        return DEFAULT_SLUG
    pairs = [f"{key}={_value_text(parameters[key])}" for key in sorted(parameters)]
    slug = _UNSAFE_SLUG_CHARS.sub("-", PAIR_SEPARATOR.join(pairs))
    if len(slug) <= MAX_SLUG_LENGTH:
        return slug
    digest = hashlib.sha256(slug.encode()).hexdigest()[:12]
    return f"{slug[: MAX_SLUG_LENGTH - 13]}-{digest}"


def _value_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def declared_parameters(notebook: Path) -> set[str]:
    """Names assigned in the notebook's cell tagged ``parameters`` (empty if it has none)."""
    try:
        return set(papermill.inspect_notebook(str(notebook)))
    except (OSError, ValueError, KeyError) as exc:
        raise SuiteInputError(str(notebook), "notebook", f"cannot read parameters: {exc}") from exc


def build_grid(
    notebook_dir: Path,
    grid_spec: GridSpec,
    notebook_filter: Sequence[str] | None = None,
    profile_filter: Sequence[str] | None = None,
) -> list[GridEntry]:
    """Build and validate the grid, sorted by notebook stem then slug.

    Args:
        notebook_dir: directory holding the ``*.ipynb`` notebooks.
        grid_spec: notebook stem -> callable(profile_filter) -> parameter dicts.
        notebook_filter: notebook names (``"01"`` or ``"01_reproduce"``); None = all.
        profile_filter: passed unchanged to every grid-spec callable.

    Raises:
        SuiteInputError: unknown notebook name, spec entry without notebook,
            undeclared parameter, non-JSON value, or two runs with one output name.
    """
    notebooks = _notebooks_in(notebook_dir)
    _check_spec_keys(notebook_dir, grid_spec, notebooks)
    entries: list[GridEntry] = []
    for notebook in _select(notebook_dir, notebooks, notebook_filter):
        spec = grid_spec.get(notebook.stem)
        parameter_sets = spec(profile_filter) if spec is not None else [{}]
        entries.extend(_validated_entries(notebook, parameter_sets))
    if not entries:
        raise SuiteInputError(str(notebook_dir), "grid", "the filters select no run")
    return sorted(entries, key=lambda entry: (entry.stem, entry.slug))


def selected_notebooks(notebook_dir: Path, notebook_filter: Sequence[str] | None = None) -> list[Path]:
    """The notebooks ``notebook_filter`` names (all when None), checked without running anything.

    Raises:
        SuiteInputError: no such directory, or a name that matches no notebook.
    """
    return _select(notebook_dir, _notebooks_in(notebook_dir), notebook_filter)


def _notebooks_in(notebook_dir: Path) -> dict[str, Path]:
    if not notebook_dir.is_dir():
        raise SuiteInputError(str(notebook_dir), "notebook_dir", "no such directory")
    paths = sorted(notebook_dir.glob("*.ipynb"))
    return {path.stem: path for path in paths if not path.name.startswith(".")}


def _check_spec_keys(notebook_dir: Path, grid_spec: GridSpec, notebooks: Mapping[str, Path]) -> None:
    for stem in sorted(grid_spec):
        if stem not in notebooks:
            raise SuiteInputError(str(notebook_dir), f"grid_spec[{stem!r}]", "no notebook with this stem")


def _select(
    notebook_dir: Path, notebooks: Mapping[str, Path], names: Sequence[str] | None
) -> list[Path]:
    if names is None:
        return list(notebooks.values())
    selected: dict[str, Path] = {}
    for name in names:
        matches = {stem: path for stem, path in notebooks.items() if stem == name or stem.startswith(f"{name}_")}
        if not matches:
            known = ", ".join(notebooks) or "none"
            raise SuiteInputError(str(notebook_dir), "notebook", f"no notebook named {name!r} (have: {known})")
        selected.update(matches)
    return [selected[stem] for stem in sorted(selected)]


def _validated_entries(notebook: Path, parameter_sets: list[dict[str, object]]) -> list[GridEntry]:
    declared = declared_parameters(notebook)
    entries = [GridEntry(notebook, dict(parameters)) for parameters in parameter_sets]
    for entry in entries:
        _check_parameters(notebook, entry.parameters, declared)
    _check_unique_slugs(notebook, entries)
    return entries


def _check_parameters(notebook: Path, parameters: Mapping[str, object], declared: set[str]) -> None:
    for name in sorted(parameters):
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise SuiteInputError(str(notebook), name, f"not a declared parameter (declared: {known})")
        try:
            json.dumps(parameters[name], allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise SuiteInputError(str(notebook), name, f"value is not JSON-serializable: {exc}") from exc


def _check_unique_slugs(notebook: Path, entries: list[GridEntry]) -> None:
    seen: set[str] = set()
    for entry in entries:
        if entry.slug in seen:
            raise SuiteInputError(str(notebook), "parameters", f"two runs share the output name {entry.slug!r}")
        seen.add(entry.slug)
