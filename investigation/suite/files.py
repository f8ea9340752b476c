"""Atomic file writes: write a temporary file in the target directory, then rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ARTIFACT_MODE = 0o644
"""Permissions of written files (mkstemp alone would leave them readable by the owner only)."""


def temporary_sibling(path: Path, suffix: str) -> Path:
    """Create an empty hidden file next to ``path`` and return its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=suffix)
    os.fchmod(handle, ARTIFACT_MODE)
    os.close(handle)
    return Path(name)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` so readers see the old file or the whole new one."""
    temporary = temporary_sibling(path, ".tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def display_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it, else absolute; always with ``/``."""
    resolved = path.resolve()
    if resolved.is_relative_to(root):
        return resolved.relative_to(root).as_posix()
    return resolved.as_posix()
