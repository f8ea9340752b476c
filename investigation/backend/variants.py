"""The candidate changes of the incident (spec section 8), each one switch away from
the original. `ORIGINAL` is the code as deployed; every other variant differs from
it in the fields its docstring names and nowhere else.

    Backend(environ, variant=VARIANTS["V4"])
"""

from __future__ import annotations

from dataclasses import dataclass, replace

ORIGINAL_CLOUD_SIGNALS = ("K_SERVICE",)
BROADER_CLOUD_SIGNALS = (
    "K_SERVICE", "K_REVISION", "K_CONFIGURATION", "GOOGLE_CLOUD_PROJECT", "GAE_SERVICE",
    "CLOUD_RUN_INSTANCE_ID",
)
ORIGINAL_E2E_FLAGS = ("E2E_TESTING", "PYTEST_RUNNING", "STAGING_E2E_TEST")


@dataclass(frozen=True)
class Variant:
    """Where the backend's behaviour may differ between the candidate changes."""

    name: str
    summary: str
    cloud_signals: tuple[str, ...] = ORIGINAL_CLOUD_SIGNALS
    e2e_flags: tuple[str, ...] = ORIGINAL_E2E_FLAGS
    relax_for_staging_gcp_project: bool = False
    ultra_defensive: bool = False
    max_managers_per_user: int = 5
    release_manager_on_disconnect: bool = False
    capacity_close_1013: bool = False
    refuse_e2e_bypass_when_deployed: bool = False


ORIGINAL = Variant("original", "the code as deployed during the incident")

VARIANTS: dict[str, Variant] = {
    variant.name: variant
    for variant in (
        ORIGINAL,
        replace(
            ORIGINAL,
            name="V1",
            summary="broader environment detection (the report's recommendation)",
            cloud_signals=BROADER_CLOUD_SIGNALS,
            e2e_flags=ORIGINAL_E2E_FLAGS + ("TESTING",),
            relax_for_staging_gcp_project=True,
        ),
        replace(
            ORIGINAL,
            name="V2",
            summary="ultra-defensive: relaxed validation almost everywhere",
            ultra_defensive=True,
        ),
        replace(ORIGINAL, name="V3", summary="per-user manager cap raised from 5 to 20",
                max_managers_per_user=20),
        replace(ORIGINAL, name="V4", summary="release the connection's manager on disconnect",
                release_manager_on_disconnect=True),
        replace(
            ORIGINAL,
            name="V5",
            summary="distinct closes: capacity 1013, no E2E bypass in staging/production",
            capacity_close_1013=True,
            refuse_e2e_bypass_when_deployed=True,
        ),
    )
}


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        known = ", ".join(VARIANTS)
        raise KeyError(f"unknown variant {name!r}; known: {known}") from None
