"""Tests of the papermill grid runner on the tiny fixture notebooks in tests/notebooks/.

Fixtures: 01_passing (parameter ``greeting``, key result "hello world"),
02_raises (raises ValueError in its third code cell), 03_params (parameters a, b).
Each kernel start costs about 2 s, so the executed grids are shared per module.
"""

from __future__ import annotations

import json
import pickle
import shutil
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from investigation.suite import (
    GridEntry,
    SuiteInputError,
    SuiteSummary,
    artifacts,
    build_grid,
    parameter_slug,
    refresh_goldens,
    run_suite,
    scan_for_secrets,
    strip_volatile_metadata,
)
from investigation.suite.artifacts import RunRecord, git_commit, notebook_to_html, read_key_result
from investigation.suite.chapters import chapter_pages, rewrite_chapter_links
from investigation.suite.execute import MAX_JOBS, worker_pool

FIXTURES = Path(__file__).parent / "notebooks"
PARAMS_GRID = {"03_params": lambda profiles: [{"a": 2, "b": "y"}, {"a": 3}]}
PAPERMILL_ERROR_TAG = "papermill-error-cell-tag"


def run_quietly(grid: list[GridEntry], out_dir: Path) -> SuiteSummary:
    return run_suite(grid, out_dir, jobs=2, profile_dirs=(), progress=False)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> SuiteSummary:
    grid = build_grid(FIXTURES, PARAMS_GRID)
    return run_quietly(grid, tmp_path_factory.mktemp("full") / "out")


def run_by_name(summary: SuiteSummary, notebook: str, slug: str) -> dict[str, object]:
    manifest = json.loads(summary.manifest_path.read_text())
    for run in manifest["runs"]:
        if run["notebook"] == notebook and run["notebook_path"] == f"{notebook}/{slug}.ipynb":
            return dict(run)
    raise AssertionError(f"no run {notebook}/{slug} in the manifest")


# --- grid ------------------------------------------------------------------


def test_slug_of_no_parameters_is_default() -> None:
    assert parameter_slug({}) == "default"


def test_slug_sorts_keys_and_writes_non_strings_as_json() -> None:
    assert parameter_slug({"variant": "original", "attempts": 3, "strict": True}) == (
        "attempts=3__strict=true__variant=original"
    )


def test_slug_replaces_unsafe_characters() -> None:
    assert parameter_slug({"profile": "../staging e2e"}) == "profile=..-staging-e2e"


def test_long_slug_is_cut_and_ends_in_a_hash() -> None:
    slug_a = parameter_slug({"p": "x" * 300})
    slug_b = parameter_slug({"p": "x" * 299 + "y"})
    assert len(slug_a) == 120
    assert slug_a != slug_b


def test_grid_runs_unlisted_notebooks_once_with_defaults() -> None:
    grid = build_grid(FIXTURES, PARAMS_GRID)
    assert [(entry.stem, entry.slug) for entry in grid] == [
        ("01_passing", "default"),
        ("02_raises", "default"),
        ("03_params", "a=2__b=y"),
        ("03_params", "a=3"),
    ]


def test_notebook_filter_accepts_number_or_stem() -> None:
    by_number = build_grid(FIXTURES, {}, notebook_filter=["01"])
    by_stem = build_grid(FIXTURES, {}, notebook_filter=["03_params", "01_passing"])
    assert [entry.stem for entry in by_number] == ["01_passing"]
    assert [entry.stem for entry in by_stem] == ["01_passing", "03_params"]


def test_profile_filter_reaches_the_grid_spec() -> None:
    spec = {"03_params": lambda profiles: [{"b": profile} for profile in profiles or []]}
    grid = build_grid(FIXTURES, spec, notebook_filter=["03"], profile_filter=["staging", "local"])
    assert [entry.parameters for entry in grid] == [{"b": "local"}, {"b": "staging"}]


def test_unknown_notebook_name_is_an_input_error() -> None:
    with pytest.raises(SuiteInputError) as caught:
        build_grid(FIXTURES, {}, notebook_filter=["99"])
    assert caught.value.field == "notebook"
    assert "'99'" in caught.value.reason


def test_grid_spec_for_a_missing_notebook_is_an_input_error() -> None:
    with pytest.raises(SuiteInputError) as caught:
        build_grid(FIXTURES, {"04_missing": lambda profiles: [{}]})
    assert caught.value.field == "grid_spec['04_missing']"


def test_unknown_parameter_fails_before_anything_is_written(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    spec = {"03_params": lambda profiles: [{"a": 1}, {"c": 1}]}
    with pytest.raises(SuiteInputError) as caught:
        run_quietly(build_grid(FIXTURES, spec), out_dir)
    assert (caught.value.file, caught.value.field) == (str(FIXTURES / "03_params.ipynb"), "c")
    assert "declared: a, b" in caught.value.reason
    assert not out_dir.exists()


def test_parameter_that_is_not_json_is_an_input_error() -> None:
    with pytest.raises(SuiteInputError) as caught:
        build_grid(FIXTURES, {"03_params": lambda profiles: [{"a": {1, 2}}]})
    assert caught.value.field == "a"


def test_two_runs_with_one_output_name_are_an_input_error() -> None:
    with pytest.raises(SuiteInputError) as caught:
        build_grid(FIXTURES, {"03_params": lambda profiles: [{"b": "x y"}, {"b": "x-y"}]})
    assert "b=x-y" in caught.value.reason


def test_filters_that_select_nothing_are_an_input_error() -> None:
    with pytest.raises(SuiteInputError):
        build_grid(FIXTURES, {"03_params": lambda profiles: []}, notebook_filter=["03"])


def test_input_error_is_one_line_and_pickles() -> None:
    error = SuiteInputError("notebooks/01_x.ipynb", "profile", "not a declared parameter")
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == "notebooks/01_x.ipynb: profile: not a declared parameter"
    assert (copy.file, copy.field, copy.reason) == (error.file, error.field, error.reason)


# --- executing the grid ------------------------------------------------------


def test_every_run_leaves_notebook_and_html(full_run: SuiteSummary) -> None:
    produced = sorted(path.relative_to(full_run.out_dir).as_posix() for path in full_run.out_dir.rglob("*"))
    assert produced == [
        "01_passing",
        "01_passing/default.html",
        "01_passing/default.ipynb",
        "02_raises",
        "02_raises/default.html",
        "02_raises/default.ipynb",
        "03_params",
        "03_params/a=2__b=y.html",
        "03_params/a=2__b=y.ipynb",
        "03_params/a=3.html",
        "03_params/a=3.ipynb",
        "index.html",
        "manifest.json",
    ]


def test_html_shows_outputs_but_no_code(full_run: SuiteSummary) -> None:
    page = (full_run.out_dir / "01_passing" / "default.html").read_text()
    assert 'href="../index.html"' in page  # the way back to every chapter and run
    assert "OUTPUT-MARKER-42" in page
    assert "input-only-marker" not in page
    assert 'print(f"{greeting} world")' not in page
    assert "chart-only cell" in page


def test_html_pages_carry_no_execution_prompts() -> None:
    """A reader's page has no code, so an "Out[4]:" beside a table or a verdict means nothing."""
    result = new_code_cell("table", execution_count=4,
                           outputs=[new_output("execute_result", {"text/plain": "a table"}, execution_count=4)])
    page = notebook_to_html(new_notebook(cells=[result]), "t")
    assert "a table" in page
    assert "Out[4]" not in page


def test_kernels_run_with_the_pinned_environment(full_run: SuiteSummary) -> None:
    nb = nbformat.read(full_run.out_dir / "01_passing" / "default.ipynb", as_version=4)
    assert nb.cells[-1].outputs[0]["text"] == "PYTHONHASHSEED=0\n"
    # MPLBACKEND: a chart shows inline without `%matplotlib inline`, as in a new cell of Jupyter Lab
    assert [output.get("data", {}).keys() >= {"image/png"} for output in nb.cells[-2].outputs] == [True]


def test_the_installed_kernel_is_this_venvs_python_with_the_pinned_environment() -> None:
    """The kernelspec's env wins over the environment a kernel is started with, so a kernelspec written before
    KERNEL_ENV changed would hide the change from every test that runs a kernel (make install rewrites it)."""
    import sys

    from jupyter_client.kernelspec import KernelSpecManager

    from investigation.suite.config import KERNEL_ENV, KERNEL_NAME

    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    assert (spec.argv[0], spec.env) == (sys.executable, KERNEL_ENV), "stale kernelspec: run make install"
    # headless, and a chart drawn in a new cell of Jupyter Lab shows inline (Agg would show '<Figure ...>')
    assert KERNEL_ENV["MPLBACKEND"] == "module://matplotlib_inline.backend_inline"


def test_failed_notebook_keeps_its_executed_copy_with_the_error_banner(full_run: SuiteSummary) -> None:
    nb = nbformat.read(full_run.out_dir / "02_raises" / "default.ipynb", as_version=4)
    banner = nb.cells[0]
    assert PAPERMILL_ERROR_TAG in banner.metadata["tags"]
    assert "An Exception was encountered" in banner.source
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code_cells[1].outputs[0]["text"] == "2\n"
    assert code_cells[2].outputs[0]["ename"] == "ValueError"
    assert code_cells[3].execution_count is None


def test_a_failure_does_not_stop_the_rest_of_the_grid(full_run: SuiteSummary) -> None:
    assert [(run.notebook, run.slug) for run in full_run.failed] == [("02_raises", "default")]
    assert full_run.failed[0].error == "In [3]: ValueError: planned failure in the third code cell"
    assert [run.status for run in full_run.runs] == ["ok", "failed", "ok", "ok"]


def test_parameters_reach_the_kernel_and_key_results_are_read(full_run: SuiteSummary) -> None:
    assert [run.key_result for run in full_run.runs] == ["hello world", None, "a=2 b=y", "a=3 b=x"]


def test_manifest_lists_each_run_with_its_outputs(full_run: SuiteSummary) -> None:
    run = run_by_name(full_run, "03_params", "a=2__b=y")
    assert run == {
        "notebook": "03_params",
        "parameters": {"a": 2, "b": "y"},
        "status": "ok",
        "error": None,
        "notebook_path": "03_params/a=2__b=y.ipynb",
        "html_path": "03_params/a=2__b=y.html",
        "key_result": "a=2 b=y",
    }
    manifest = json.loads(full_run.manifest_path.read_text())
    assert manifest["summary"] == {"runs": 4, "failed": 1}
    assert manifest["packages"]["papermill"] is not None
    assert manifest["kernel_env"]["PYTHONHASHSEED"] == "0"


def test_artifacts_are_readable_by_everyone(full_run: SuiteSummary) -> None:
    modes = {path.stat().st_mode & 0o777 for path in full_run.out_dir.rglob("*") if path.is_file()}
    assert modes == {0o644}


def test_index_has_one_line_per_run(full_run: SuiteSummary) -> None:
    rows = [line for line in full_run.index_path.read_text().splitlines() if line.startswith("<tr class=")]
    assert len(rows) == 4
    assert 'href="02_raises/default.html"' in rows[1]
    assert "failed: In [3]: ValueError" in rows[1]
    assert "a=3 b=x" in rows[3]


def test_executed_notebook_records_relative_paths_only(full_run: SuiteSummary) -> None:
    nb = nbformat.read(full_run.out_dir / "03_params" / "a=3.ipynb", as_version=4)
    assert nb.metadata.papermill["output_path"] == "03_params/a=3.ipynb"
    assert nb.metadata.papermill["input_path"] == "tests/notebooks/03_params.ipynb"
    assert nb.metadata.papermill["parameters"] == {"a": 3}


def test_a_job_count_beyond_the_bound_starts_no_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    # the pool starts every worker at once: --jobs 100000 spawned processes until killed
    def no_pool(workers: int, preload: object) -> None:
        raise AssertionError(f"{workers} workers started")

    monkeypatch.setattr("investigation.suite.execute._new_pool", no_pool)
    with pytest.raises(SuiteInputError) as caught, worker_pool(MAX_JOBS + 1):
        pass
    assert str(caught.value) == f"<command line>: --jobs: must be at most 64, got {MAX_JOBS + 1}"


def test_every_artifact_is_byte_identical_across_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs of the same grid write the same bytes, executed notebooks and pages included (no
    execution times, no random cell ids), so two artifact sets can be diffed for behaviour changes.
    03_params runs with parameters: papermill injects a cell, whose id it draws at random."""
    # Others commit to this repository while tests run; the commit is an input, so pin it.
    monkeypatch.setattr(artifacts, "git_commit", lambda repo_dir: "0" * 40)
    grid = build_grid(FIXTURES, {"03_params": lambda profiles: [{"a": 2}]}, notebook_filter=["01", "02", "03"])
    run_quietly(grid, tmp_path / "first")
    run_quietly(grid, tmp_path / "second")
    first = {path.relative_to(tmp_path / "first"): path.read_bytes() for path in (tmp_path / "first").rglob("*")
             if path.is_file()}
    second = {path.relative_to(tmp_path / "second"): path.read_bytes() for path in (tmp_path / "second").rglob("*")
              if path.is_file()}
    assert Path("03_params/a=2.ipynb") in first
    assert first == second
    assert list(tmp_path.rglob(".*")) == []


def test_git_commit_is_the_head_hash_or_none_outside_a_repository(tmp_path: Path) -> None:
    commit = git_commit(FIXTURES)
    assert commit is not None and len(commit) == 40
    assert git_commit(tmp_path) is None


# --- goldens -----------------------------------------------------------------


def executed_by_papermill() -> nbformat.NotebookNode:
    cell = new_code_cell("x = 1", execution_count=1, outputs=[new_output("stream", text="1\n")])
    cell.metadata["papermill"] = {"duration": 0.5, "end_time": "t1", "exception": False, "start_time": "t0", "status": "completed"}
    cell.metadata["execution"] = {"iopub.status.busy": "t0", "shell.execute_reply": "t1"}
    cell.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[cell])
    nb.metadata["papermill"] = {
        "default_parameters": {},
        "duration": 2.5,
        "end_time": "t1",
        "environment_variables": {},
        "exception": None,
        "input_path": "/abs/in.ipynb",
        "output_path": "/abs/out.ipynb",
        "parameters": {"profile": "staging"},
        "start_time": "t0",
        "version": "2.7.0",
    }
    return nb


def test_strip_volatile_metadata_removes_times_and_paths_and_keeps_parameters() -> None:
    original = executed_by_papermill()
    stripped = strip_volatile_metadata(original)
    assert stripped.metadata["papermill"] == {
        "default_parameters": {},
        "environment_variables": {},
        "parameters": {"profile": "staging"},
        "version": "2.7.0",
    }
    assert stripped.cells[0].metadata == {"tags": ["parameters"]}
    assert stripped.cells[0].outputs == original.cells[0].outputs
    assert original.metadata["papermill"]["duration"] == 2.5


def test_refresh_replaces_passing_goldens_and_keeps_failing_ones(tmp_path: Path) -> None:
    passing = Path(shutil.copy(FIXTURES / "01_passing.ipynb", tmp_path))
    failing = Path(shutil.copy(FIXTURES / "02_raises.ipynb", tmp_path))
    failing_before = failing.read_bytes()
    outcomes = refresh_goldens([failing, passing], jobs=2, progress=False)
    assert [(Path(outcome.path).name, outcome.error is None) for outcome in outcomes] == [
        ("01_passing.ipynb", True),
        ("02_raises.ipynb", False),
    ]
    assert failing.read_bytes() == failing_before
    refreshed = nbformat.read(passing, as_version=4)
    assert read_key_result(refreshed) == "hello world"
    assert "start_time" not in refreshed.metadata["papermill"]
    assert all("papermill" not in cell.metadata for cell in refreshed.cells)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["01_passing.ipynb", "02_raises.ipynb"]


def test_refresh_of_a_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(SuiteInputError):
        refresh_goldens([tmp_path / "01_missing.ipynb"], progress=False)


# --- key result and redaction --------------------------------------------------


def test_key_result_is_the_last_text_output_of_the_tagged_cell() -> None:
    cell = new_code_cell("", outputs=[
        new_output("stream", text="first\n"),
        new_output("execute_result", data={"text/plain": "'1011 in staging'"}, execution_count=1),
    ])
    cell.metadata["tags"] = ["key-result"]
    assert read_key_result(new_notebook(cells=[new_code_cell("x"), cell])) == "'1011 in staging'"
    assert read_key_result(new_notebook(cells=[new_code_cell("x")])) is None


def test_scan_finds_planted_secrets_in_any_written_form(tmp_path: Path) -> None:
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "run.html").write_text("<p>key: s3cr&lt;et&gt;-value</p>")
    (tmp_path / "nb" / "run.ipynb").write_text('{"text": "token eyJhbGciOi.payload.sig"}')
    (tmp_path / "clean.json").write_text('{"token": "eyJhbGci...a1b2"}')
    leaks = scan_for_secrets(tmp_path, ["s3cr<et>-value", "eyJhbGciOi.payload.sig", "absent-secret", ""])
    assert leaks == [("nb/run.html", "s3cr..."), ("nb/run.ipynb", "eyJh...")]


def test_scan_of_a_real_run_finds_a_parameter_value(full_run: SuiteSummary) -> None:
    leaks = scan_for_secrets(full_run.out_dir, ["OUTPUT-MARKER-42"])
    assert leaks == [("01_passing/default.html", "OUTP..."), ("01_passing/default.ipynb", "OUTP...")]


def test_split_stream_outputs_are_merged_so_runs_record_the_same_outputs() -> None:
    """A kernel may deliver ``print(x)`` as two stream messages ("x", then the newline)."""
    from investigation.suite.execute import coalesce_streams

    split = new_code_cell("print(x)", execution_count=1, outputs=[
        new_output("stream", name="stdout", text="local-debug -> staging-e2e: 7 tests"),
        new_output("stream", name="stdout", text="\n"),
    ])
    whole = new_code_cell("print(x)", execution_count=1, outputs=[
        new_output("stream", name="stdout", text="local-debug -> staging-e2e: 7 tests\n"),
    ])
    split.metadata["tags"] = whole.metadata["tags"] = ["key-result"]
    merged = coalesce_streams(new_notebook(cells=[split]))
    assert merged.cells[0].outputs == new_notebook(cells=[whole]).cells[0].outputs
    assert read_key_result(merged) == "local-debug -> staging-e2e: 7 tests"


# --- chapters: links between pages and the index ------------------------------------


class PageOutline(HTMLParser):
    """The hrefs of a page's links, its section ids, h2 texts, and open/close tag balance."""

    VOID = {"br", "hr", "img", "input", "link", "meta", "wbr"}

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.section_ids: list[str] = []
        self.headings: list[str] = []
        self.open: list[str] = []
        self.unbalanced: list[str] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href") is not None:
            self.hrefs.append(str(values["href"]))
        if tag == "section":
            self.section_ids.append(str(values.get("id")))
        if tag == "h2":
            self.headings.append("")
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            self.unbalanced.append(tag)

    def handle_data(self, data: str) -> None:
        if "h2" in self.open:
            self.headings[-1] += data


def test_a_chapter_run_once_lands_on_its_page_and_one_run_twice_on_its_index_section() -> None:
    runs = [("02_b", "default"), ("01_a", "x=1"), ("01_a", "x=2")]
    assert chapter_pages(runs) == {"01_a": "index.html#01_a", "02_b": "02_b/default.html"}


def test_links_to_grid_notebooks_are_rewritten_and_every_other_byte_is_kept() -> None:
    pages = {"01_a": "index.html#01_a", "02_b": "02_b/default.html"}
    page = (
        '<p><a href="02_b.ipynb">next</a>, <a class="x" href=\'01_a.ipynb#Setup\' title="x &amp; y">back</a>,\n'
        '<A HREF="./02_b.ipynb#Results">results</A>, <a href="03_c.ipynb">not run</a>,\n'
        '<a href="https://example.org/02_b.ipynb">url</a> <a href="notes/02_b.ipynb">other dir</a>'
        ' <a href="#02_b.ipynb">anchor</a> <a href="02_b.html">html</a></p>\n'
        "<script>var s = '<a href=\"02_b.ipynb\">';</script>\n"
    )
    expected = (
        '<p><a href="../02_b/default.html">next</a>, <a class="x" href="../index.html#01_a" title="x &amp; y">back</a>,\n'
        '<a href="../02_b/default.html#Results">results</A>, <a href="03_c.ipynb">not run</a>,\n'
        '<a href="https://example.org/02_b.ipynb">url</a> <a href="notes/02_b.ipynb">other dir</a>'
        ' <a href="#02_b.ipynb">anchor</a> <a href="02_b.html">html</a></p>\n'
        "<script>var s = '<a href=\"02_b.ipynb\">';</script>\n"
    )
    assert rewrite_chapter_links(page, pages, "../") == expected


def test_index_leads_with_the_start_chapter_then_one_section_per_chapter(tmp_path: Path) -> None:
    records = [
        RunRecord("01_a", {"x": 1}, "x=1", "ok", None, "01_a/x=1.ipynb", "01_a/x=1.html", "k1"),
        RunRecord("01_a", {"x": 2}, "x=2", "failed", "In [2]: ValueError: boom", "01_a/x=2.ipynb", "01_a/x=2.html", None),
        RunRecord("02_b", {}, "default", "ok", None, "02_b/default.ipynb", "02_b/default.html", "<b>&"),
        RunRecord("03_c", {"p": "q"}, "p=q", "ok", None, "03_c/p=q.ipynb", "03_c/p=q.html", None),
    ]
    titles = {"01_a": 'Title "A" <1>', "02_b": "Bee"}
    page = artifacts.write_index(tmp_path, records, titles, start_here="02_b").read_text()
    outline = PageOutline(page)
    assert outline.unbalanced == [] and outline.open == []
    assert outline.hrefs[0] == "02_b/default.html"
    assert outline.section_ids == ["01_a", "02_b", "03_c"]
    assert outline.headings == ['01_a: Title "A" <1>', "02_b: Bee", "03_c"]
    assert "4 runs: 3 ok, 1 failed." in page and 'href="manifest.json"' in page
    assert "reading order" in page
    assert "<p>1 run: 1 ok, 0 failed.</p>" in page and "<p>2 runs: 1 ok, 1 failed.</p>" in page
    rows = [line for line in page.splitlines() if line.startswith("<tr class=")]
    assert rows[1].startswith('<tr class="failed">') and "failed: In [2]: ValueError: boom" in rows[1]
    assert "&lt;b&gt;&amp;" in rows[2]
    several = artifacts.write_index(tmp_path, records, titles, start_here="01_a").read_text()
    assert PageOutline(several).hrefs[0] == "index.html#01_a"


def test_index_without_a_start_chapter_starts_at_the_last_chapter(tmp_path: Path) -> None:
    records = [
        RunRecord("01_a", {}, "default", "ok", None, "01_a/default.ipynb", "01_a/default.html", None),
        RunRecord("06_z", {}, "default", "ok", None, "06_z/default.ipynb", "06_z/default.html", None),
    ]
    assert PageOutline(artifacts.write_index(tmp_path, records, {}).read_text()).hrefs[0] == "06_z/default.html"


def chapter_notebook(path: Path, markdown: list[str], parameters: str | None) -> None:
    cells = [new_markdown_cell(text) for text in markdown]
    if parameters is not None:
        cells.append(new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    cells.append(new_code_cell("print('ran')"))
    nbformat.write(new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}), path)


@pytest.fixture(scope="module")
def chapters_run(tmp_path_factory: pytest.TempPathFactory) -> SuiteSummary:
    """01_first runs twice (n=1, n=2), 02_second once; each links the other."""
    notebooks = tmp_path_factory.mktemp("chapters")
    chapter_notebook(notebooks / "01_first.ipynb", [
        "# First chapter\n\nNext: [the second](02_second.ipynb); itself: [first](01_first.ipynb); "
        "[notes](notes.ipynb).",
    ], "n = 0")
    chapter_notebook(notebooks / "02_second.ipynb", [
        "A cell without a heading.",
        "## Second chapter\n\nBack to [the first][first], on to [a missing one](03_missing.ipynb).\n\n"
        "[first]: 01_first.ipynb",
    ], None)
    grid = build_grid(notebooks, {"01_first": lambda profiles: [{"n": 1}, {"n": 2}]})
    return run_quietly(grid, notebooks / "out")


def test_exported_pages_link_the_chapters_as_they_sit_in_the_artifacts(chapters_run: SuiteSummary) -> None:
    first = PageOutline((chapters_run.out_dir / "01_first" / "n=1.html").read_text())
    second = PageOutline((chapters_run.out_dir / "02_second" / "default.html").read_text())
    assert {"../02_second/default.html", "../index.html#01_first", "notes.ipynb"} <= set(first.hrefs)
    assert {"../index.html#01_first", "03_missing.ipynb"} <= set(second.hrefs)
    assert not {"02_second.ipynb", "01_first.ipynb"} & set(first.hrefs + second.hrefs)


def test_executed_notebooks_keep_their_links_as_run(chapters_run: SuiteSummary) -> None:
    executed = nbformat.read(chapters_run.out_dir / "01_first" / "n=2.ipynb", as_version=4)
    assert "[the second](02_second.ipynb)" in executed.cells[0].source


def test_index_sections_are_titled_from_the_notebooks(chapters_run: SuiteSummary) -> None:
    outline = PageOutline(chapters_run.index_path.read_text())
    assert outline.section_ids == ["01_first", "02_second"]
    assert outline.headings == ["01_first: First chapter", "02_second: Second chapter"]
    assert outline.hrefs[0] == "02_second/default.html"
    assert {"01_first/n=1.html", "01_first/n=2.ipynb"} <= set(outline.hrefs)
