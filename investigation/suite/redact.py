"""Checking artifacts for leaked secrets.

Usage::

    leaks = scan_for_secrets(Path("artifacts"), ["test-only-signing-key", whole_token])
    assert leaks == []
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from pathlib import Path

PREFIX_LENGTH = 4


def scan_for_secrets(out_dir: Path, secrets: Iterable[str]) -> list[tuple[str, str]]:
    """Every ``(file, secret prefix)`` where an artifact under ``out_dir`` contains a secret.

    Each file is read as UTF-8 text; each non-empty secret is searched as
    written, HTML-escaped and JSON-escaped. Files are relative ``/`` paths; a
    secret appears only as its first 4 characters and ``...``, so the result
    itself can be printed. Sorted, without duplicates.
    """
    forms = {secret: _written_forms(secret) for secret in secrets if secret}
    leaks: set[tuple[str, str]] = set()
    for path in sorted(item for item in out_dir.rglob("*") if item.is_file()):
        text = path.read_text(encoding="utf-8", errors="replace")
        for secret, written in forms.items():
            if any(form in text for form in written):
                leaks.add((path.relative_to(out_dir).as_posix(), f"{secret[:PREFIX_LENGTH]}..."))
    return sorted(leaks)


def _written_forms(secret: str) -> set[str]:
    return {secret, html.escape(secret), json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
