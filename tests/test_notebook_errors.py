"""Tests of bad notebook parameters: one line naming the parameter, raised before anything runs.

The shipped profiles and the variants (original, V1..V5) are those of data/profiles and spec 8.
"""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell

from investigation.notebook_errors import (
    NotebookParameterError,
    checked_claim,
    checked_count,
    checked_passing_profile_name,
    checked_profile,
    checked_variant,
)
from investigation.reproduce import run_profile, run_profiles


@pytest.mark.parametrize(
    ("call", "parameter", "value"),
    [
        (lambda: run_profile("staging-e2e", "V9"), "variant", "'V9'"),
        (lambda: run_profile("staging-e2e", "v3"), "variant", "'v3'"),
        (lambda: run_profile("nope"), "profile", "'nope'"),
        (lambda: run_profiles(["staging-e2e", "nope"]), "profiles", "'nope'"),
        (lambda: run_profiles(["staging-e2e"], reference="nope"), "reference", "'nope'"),
    ],
)
def test_an_unknown_name_is_one_line_naming_the_parameter(call, parameter: str, value: str) -> None:
    with pytest.raises(NotebookParameterError) as caught:
        call()
    message = str(caught.value)
    assert message.startswith(f"parameter {parameter}: unknown ")
    assert value in message and "\n" not in message


def test_the_variant_error_lists_the_known_variants() -> None:
    with pytest.raises(NotebookParameterError, match=r"known: original, V1, V2, V3, V4, V5$"):
        checked_variant("variant", "V9")


def test_a_notebook_shows_the_error_as_its_one_line_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    shell = InteractiveShell.instance()
    shell.run_cell("from investigation.notebook_errors import checked_profile\nchecked_profile('passing', 'nope')")
    shown = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(shown) == 1
    assert shown[0].startswith("NotebookParameterError: parameter passing: unknown profile 'nope'; known: ")


def test_a_known_profile_loads() -> None:
    assert checked_profile("passing", "local-debug").name == "local-debug"


def test_a_reference_missing_from_the_runs_names_the_reference_parameter() -> None:
    from investigation.charts.divergence import run_divergence

    runs = run_profiles(["local-debug"])
    with pytest.raises(NotebookParameterError, match=r"^parameter reference: 'pytest' is not among the profiles run: local-debug$"):
        run_divergence(runs, "pytest")


def test_an_unknown_claim_is_one_line_naming_the_parameter() -> None:
    """Notebook 03's detail_claim: a key the ledger does not have was a KeyError traceback ('nope')."""
    with pytest.raises(NotebookParameterError) as caught:
        checked_claim("detail_claim", "nope")
    assert str(caught.value).startswith("parameter detail_claim: unknown claim 'nope'; known: why1.validation_raises, ")
    assert checked_claim("detail_claim", "fix.v1") == "fix.v1"


@pytest.mark.parametrize("value", [0, -1, "abc", 2.5, True, None])
def test_a_count_below_one_or_not_a_whole_number_is_refused(value: object) -> None:
    """Notebook 04's top_lines: -1 sliced off one line of 579 and drew a 20,000-pixel figure, 'abc' failed
    after the whole isolation with a TypeError; a count is a whole number of at least 1."""
    with pytest.raises(NotebookParameterError, match=r"^parameter top_lines: must be a whole number of at least 1"):
        checked_count("top_lines", value)
    assert checked_count("top_lines", 12) == 12


def test_an_unknown_profile_says_how_to_add_profiles_of_ones_own() -> None:
    with pytest.raises(NotebookParameterError, match=r"\(profiles of your own: %env INVESTIGATION_PROFILES_DIR=DIR\)$"):
        checked_profile("profile", "my-staging")


def test_a_failing_reference_names_the_reference_parameter() -> None:
    # staging-e2e.toml: a user's 6th connection to one instance meets 5 managers (spec 4.2): 10 of its 36 close
    # 1011 (derived connection by connection in test_hand_derived_runs.py)
    with pytest.raises(NotebookParameterError, match=r"^parameter reference: staging-e2e fails under the original "
                                                     r"code \(10 of 36 connections\); the reference must be"):
        checked_passing_profile_name("reference", "staging-e2e")


def test_a_passing_reference_is_returned() -> None:
    assert checked_passing_profile_name("reference", "local-debug") == "local-debug"
