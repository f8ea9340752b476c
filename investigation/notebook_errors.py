"""Bad notebook parameters, reported as one line that names the parameter.

    variant = checked_variant("variant", variant)       # NotebookParameterError if unknown
    profile = checked_profile("passing", passing)       # the loaded Profile

An engineer who sets a parameter the chapter cannot use (an unknown profile or
variant, a count below 1) gets ``NotebookParameterError: parameter variant: ...``
in the cell's output, not a traceback through the library: IPython shows an
exception that has ``_render_traceback_`` as the lines that method returns.
"""

from __future__ import annotations

from investigation.backend.variants import VARIANTS
from investigation.profiles import (
    PROFILES_DIR_ENV,
    Profile,
    ProfileError,
    ShownAsOneLine,
    load_profile,
    profile_paths,
)
from investigation.report import plural
from investigation.simulate import simulate


class NotebookParameterError(ShownAsOneLine, ValueError):
    """A notebook parameter holds a value the chapter cannot use; ``str()`` is one line."""

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(parameter, reason)
        self.parameter = parameter
        self.reason = reason

    def __str__(self) -> str:
        return f"parameter {self.parameter}: {self.reason}"


def checked_variant(parameter: str, name: str) -> str:
    """``name`` if it is a variant (``original``, ``V1``..``V5``); else NotebookParameterError."""
    if name not in VARIANTS:
        raise NotebookParameterError(parameter, f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    return name


def checked_profile_name(parameter: str, name: object) -> str:
    """``name`` if a profile of that name exists (data/profiles plus the extra directory)."""
    try:
        known = list(profile_paths())
    except ProfileError as error:
        raise NotebookParameterError(parameter, str(error)) from None
    if not isinstance(name, str) or name not in known:
        raise NotebookParameterError(parameter, f"unknown profile {name!r}; known: {', '.join(known)} "
                                                f"(profiles of your own: %env {PROFILES_DIR_ENV}=DIR)")
    return name


def checked_passing_profile_name(parameter: str, name: object) -> str:
    """``name`` if that profile exists and none of its connections fails under the original code: a
    reference the failing profiles are isolated against."""
    profile = checked_profile(parameter, name)
    run = simulate(profile)
    if run.failures:
        raise NotebookParameterError(
            parameter, f"{profile.name} fails under the original code ({len(run.failures)} of "
            f"{plural(len(run.connections), 'connection')}); the reference must be a profile whose connections "
            "all pass")
    return profile.name


def checked_profile(parameter: str, name: object) -> Profile:
    """The profile called ``name``, loaded; an unknown name or an invalid file names ``parameter``."""
    checked = checked_profile_name(parameter, name)
    try:
        return load_profile(checked)
    except ProfileError as error:
        raise NotebookParameterError(parameter, str(error)) from None


def checked_claim(parameter: str, key: object) -> str:
    """``key`` if it names a claim of the ledger (``investigation.analysis.hypotheses``)."""
    from investigation.analysis.hypotheses import HYPOTHESES

    known = [hypothesis.key for hypothesis in HYPOTHESES]
    if key not in known:
        raise NotebookParameterError(parameter, f"unknown claim {key!r}; known: {', '.join(known)}")
    return str(key)


def checked_count(parameter: str, value: object) -> int:
    """``value`` if it is a whole number of at least 1 (``True`` is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise NotebookParameterError(parameter, f"must be a whole number of at least 1, got {value!r}")
    return value
