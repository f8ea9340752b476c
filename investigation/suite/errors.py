"""Errors of the notebook suite; each carries the file, field and reason it names."""

from __future__ import annotations


class SuiteInputError(ValueError):
    """Bad suite input, found before anything runs or is written.

    ``str(error)`` is the one-line message ``"{file}: {field}: {reason}"``.
    The error pickles, so worker processes can raise it too.
    """

    def __init__(self, file: str, field: str, reason: str) -> None:
        super().__init__(file, field, reason)
        self.file = file
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.reason}"

    def __repr__(self) -> str:
        return f"SuiteInputError(file={self.file!r}, field={self.field!r}, reason={self.reason!r})"
