"""What a run leaves behind: key result, HTML without code, index.html and manifest.json.

Usage::

    key_result = read_key_result(executed_notebook)
    html = notebook_to_html(executed_notebook, title="01_reproduce profile=staging")
    write_index(out_dir, records, {"01_reproduce": "Reproducing ..."}, start_here="06_postmortem")
    write_manifest(out_dir, records, [DEFAULT_PROFILES_DIR], REPO_ROOT)
"""

from __future__ import annotations

import copy
import hashlib
import html
import json
import platform
import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from itertools import groupby
from pathlib import Path

import nbformat
import nbformat.v4
from nbconvert import HTMLExporter
from traitlets.config import Config

from investigation.suite.config import KERNEL_ENV
from investigation.suite.files import display_path, write_text_atomic

KEY_RESULT_TAG = "key-result"
"""A notebook states its key result in a code cell with this tag.

The text of the cell's last output is the key result: a ``stream`` output
(``print(...)``) or the ``text/plain`` of a display/execute result. Printing a
string avoids the quotes of its repr. The text is shown in index.html and
manifest.json, so it must hold no secret.
"""

REMOVE_INPUT_TAG = "remove-input"
MANIFEST_NAME = "manifest.json"
INDEX_NAME = "index.html"
KEY_PACKAGES = (
    "investigation",
    "ipykernel",
    "matplotlib",
    "nbclient",
    "nbconvert",
    "nbformat",
    "papermill",
    "pydantic",
    "pyjwt",
    "starlette",
    "tqdm",
    "uvicorn",
    "websockets",
)


@dataclass(frozen=True)
class RunRecord:
    """The outcome of one grid run; paths are relative to the output directory."""

    notebook: str
    parameters: dict[str, object]
    slug: str
    status: str
    error: str | None
    notebook_path: str | None
    html_path: str | None
    key_result: str | None

    @property
    def failed(self) -> bool:
        return self.status != "ok"

    def to_json_dict(self) -> dict[str, object]:
        return {
            "notebook": self.notebook,
            "parameters": self.parameters,
            "status": self.status,
            "error": self.error,
            "notebook_path": self.notebook_path,
            "html_path": self.html_path,
            "key_result": self.key_result,
        }


def read_key_result(nb: nbformat.NotebookNode) -> str | None:
    """The last output text of the first cell tagged ``key-result``, stripped; None if absent."""
    for cell in nb.cells:
        if KEY_RESULT_TAG in cell.get("metadata", {}).get("tags", []):
            texts = [_output_text(output) for output in cell.get("outputs", [])]
            present = [text for text in texts if text is not None]
            return present[-1].strip() if present else None
    return None


def _output_text(output: nbformat.NotebookNode) -> str | None:
    if output.get("output_type") == "stream":
        return str(output.get("text", ""))
    plain = output.get("data", {}).get("text/plain")
    return None if plain is None else str(plain)


EXECUTION_TIME_KEYS = ("duration", "end_time", "start_time")
"""Keys of papermill's notebook and cell metadata that time one execution."""
PAPERMILL_CELL_TAGS = ("injected-parameters", "papermill-error-cell-tag")
"""Tags of the cells papermill adds (the run's parameters; the error banner and its marker),
each with an id drawn at random."""


def reproducible(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of an executed notebook without what differs between two executions of the same
    inputs: papermill's start, end and duration (notebook and cells), nbclient's per-cell
    ``execution`` timestamps, and the random ids of the cells papermill adds (each becomes its
    tag, numbered from the second on). What the run produced (outputs, status, exceptions,
    parameters) stays."""
    copied = copy.deepcopy(nb)
    for key in EXECUTION_TIME_KEYS:
        copied.metadata.get("papermill", {}).pop(key, None)
    added: Counter[str] = Counter()
    for cell in copied.cells:
        cell.metadata.pop("execution", None)
        for key in EXECUTION_TIME_KEYS:
            cell.metadata.get("papermill", {}).pop(key, None)
        tag = next((tag for tag in PAPERMILL_CELL_TAGS if tag in cell.metadata.get("tags", [])), None)
        if tag is not None:
            added[tag] += 1
            cell.id = tag if added[tag] == 1 else f"{tag}-{added[tag]}"
    return copied


def notebook_to_html(nb: nbformat.NotebookNode, title: str, index_href: str | None = None) -> str:
    """HTML of the notebook's outputs and markdown, without any code input or In/Out prompt.

    ``index_href``: when given, the page opens with a link to the index of all runs there
    (the executed notebook itself is left as it ran).
    """
    if index_href is not None:
        nb = copy.deepcopy(nb)
        link = nbformat.v4.new_markdown_cell(f"[All chapters and runs]({index_href})")
        link.id = "index-link"  # a fixed id: the page is the same bytes at every run
        nb.cells.insert(0, link)
    config = Config()
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_input_tags = {REMOVE_INPUT_TAG}
    exporter = HTMLExporter(config=config, exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    return str(body)


def write_index(
    out_dir: Path, records: Sequence[RunRecord], titles: Mapping[str, str], start_here: str | None = None
) -> Path:
    """Write ``index.html``: a lead, then one section per chapter with one table row (one line) per run.

    Args:
        records: the runs; shown by notebook stem (the reading order), then parameter slug.
        titles: notebook stem -> chapter title; a chapter without one is headed by its stem.
        start_here: the stem of the chapter the lead links first; None = the last chapter,
            the one that draws the others together. A stem that did not run links nothing.
    """
    in_reading_order = sorted(records, key=lambda record: (record.notebook, record.slug))
    chapters = {stem: list(runs) for stem, runs in groupby(in_reading_order, key=lambda record: record.notebook)}
    start = start_here if start_here is not None else next(reversed(chapters), None)
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8"><title>Investigation suite runs</title>',
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}"
        ".failed{color:#b00}</style></head>",
        "<body>",
        "<h1>Investigation suite runs</h1>",
        _lead(chapters, titles, start),
        f'<p>{_run_counts(records)} Details: <a href="{MANIFEST_NAME}">{MANIFEST_NAME}</a>.</p>',
        *(line for stem, runs in chapters.items() for line in _chapter_section(stem, titles.get(stem), runs)),
        "</body>",
        "</html>",
    ]
    path = out_dir / INDEX_NAME
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def _lead(chapters: Mapping[str, list[RunRecord]], titles: Mapping[str, str], start: str | None) -> str:
    order = (
        "The chapters below are in reading order, by notebook number. Each lists its runs: the "
        "parameters (linked to the run's page: outputs and text, no code), the status, the key "
        "result and the executed notebook."
    )
    if start not in chapters:
        return f"<p>{order}</p>"
    runs = chapters[start]
    landing = runs[0].html_path if len(runs) == 1 and runs[0].html_path is not None else f"{INDEX_NAME}#{start}"
    link = _link(landing, titles.get(start, start))
    return f"<p>Start here: {link} ({html.escape(start)}). {order}</p>"


def _chapter_section(stem: str, title: str | None, runs: Sequence[RunRecord]) -> list[str]:
    heading = stem if title is None else f"{stem}: {title}"
    return [
        f'<section id="{html.escape(stem)}">',
        f"<h2>{html.escape(heading)}</h2>",
        f"<p>{_run_counts(runs)}</p>",
        "<table>",
        "<tr><th>parameters (page)</th><th>status</th><th>key result</th><th>executed notebook</th></tr>",
        *(_index_row(run) for run in runs),
        "</table>",
        "</section>",
    ]


def _run_counts(runs: Sequence[RunRecord]) -> str:
    """``"N runs: K ok, F failed."`` (``"1 run: ..."`` for one)."""
    ok = sum(not run.failed for run in runs)
    noun = "run" if len(runs) == 1 else "runs"
    return f"{len(runs)} {noun}: {ok} ok, {len(runs) - ok} failed."


def _index_row(record: RunRecord) -> str:
    status = record.status if record.error is None else f"{record.status}: {record.error}"
    return (
        f'<tr class="{html.escape(record.status)}"><td>{_link(record.html_path, _parameters_text(record))}</td>'
        f"<td>{html.escape(status)}</td><td>{html.escape(record.key_result or '')}</td>"
        f"<td>{_link(record.notebook_path, 'ipynb')}</td></tr>"
    )


def _parameters_text(record: RunRecord) -> str:
    """``key=value`` pairs (non-strings as JSON) joined by ``, ``; "default parameters" if none."""
    pairs = [
        f"{key}={value if isinstance(value, str) else json.dumps(value, sort_keys=True)}"
        for key, value in sorted(record.parameters.items())
    ]
    return ", ".join(pairs) or "default parameters"


def _link(target: str | None, text: str) -> str:
    if target is None:
        return html.escape(text)
    return f'<a href="{html.escape(target)}">{html.escape(text)}</a>'


def write_manifest(
    out_dir: Path, records: Sequence[RunRecord], profile_dirs: Iterable[Path], repo_root: Path
) -> Path:
    """Write ``manifest.json``: versions, git commit, profile hashes, kernel env and runs.

    The bytes depend only on the inputs (sorted keys, runs in record order, no times).
    """
    manifest = {
        "git_commit": git_commit(repo_root),
        "python": platform.python_version(),
        "packages": package_versions(KEY_PACKAGES),
        "kernel_env": KERNEL_ENV,
        "profiles": profile_hashes(profile_dirs, repo_root),
        "summary": {"runs": len(records), "failed": sum(record.failed for record in records)},
        "runs": [record.to_json_dict() for record in records],
    }
    path = out_dir / MANIFEST_NAME
    write_text_atomic(path, json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return path


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Installed version of each distribution; None when it is not installed."""
    versions: dict[str, str | None] = {}
    for name in sorted(names):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(repo_dir: Path) -> str | None:
    """``git rev-parse HEAD`` in ``repo_dir``; None when git or the repository is missing."""
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo_dir, capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return completed.stdout.strip() if completed.returncode == 0 else None


def profile_hashes(profile_dirs: Iterable[Path], repo_root: Path) -> dict[str, str]:
    """sha256 of every ``*.toml`` in the given directories, keyed by repo-relative path."""
    hashes: dict[str, str] = {}
    for directory in profile_dirs:
        for path in sorted(directory.glob("*.toml")):
            hashes[display_path(path, repo_root)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes
