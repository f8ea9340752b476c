"""Plain-text views of runs, for the terminal and for notebook text outputs.

    print(connection_table(simulate(load_profile("staging-e2e"))))
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from investigation.trace import ConnectionResult, RunResult, close_code_label, unidentified


def plural(count: int, noun: str) -> str:
    """``1 connection``, ``2 connections``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def share_text(part: int, whole: int) -> str:
    """``all 36`` when ``part`` is the whole, else ``2 of the 5``."""
    return f"all {whole}" if part == whole else f"{part} of the {whole}"


def ordinal(number: int) -> str:
    """``1st``, ``2nd``, ``11th``, ``23rd``."""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def short_text(text: str, limit: int = 70) -> str:
    """``text`` cut to ``limit`` characters, ``...`` marking the cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def and_list(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c`` (at least one item)."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


CONNECTION_COLUMNS = ("#", "t_s", "inst", "client", "user", "close", "reason", "decided by")


NEVER_ESTABLISHED = "never established"
"""The user cell of a connection whose user the server never established (``ConnectionResult.identified_user``)."""


def never_established_text(connections: Sequence[ConnectionResult], noun: str = "connection") -> str:
    """``2 connections whose user the server never established`` (``trace.unidentified``); empty when none."""
    never = unidentified(connections)
    return f"{plural(len(never), noun)} whose user the server never established" if never else ""


def established_user(connection: ConnectionResult) -> str:
    """The user the server established for ``connection`` (after spec 5.4's strip), else ``NEVER_ESTABLISHED``:
    its client's planned id is no user."""
    user = connection.identified_user()
    return NEVER_ESTABLISHED if user is None else user


def connection_row(connection: ConnectionResult) -> tuple[str, ...]:
    deciding = connection.deciding_decision()
    return (
        str(connection.index),
        f"{connection.at_s:.1f}",
        str(connection.instance),
        connection.client,
        established_user(connection),
        close_code_label(connection.close_code),
        connection.close_reason or "-",
        f"{deciding.point}={deciding.outcome}" if deciding else "-",
    )


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A fixed-width text table, columns as wide as their widest cell; a cell's control characters are escaped
    (:func:`escape_controls`), so each row stays one line."""
    shown = [[escape_controls(str(cell)) for cell in line] for line in (header, *rows)]
    widths = [max(len(cell) for cell in column) for column in zip(*shown, strict=False)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
             for line in shown]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})
"""Unicode categories of the characters a text table escapes: control characters and line or paragraph
separators (each may break or hide a row)."""


def escape_controls(text: str) -> str:
    """``text`` with each control character written as Python writes it in a string (``\\n``, ``\\x1b``,
    ``\\u2028``); every other character, unicode, quotes and ``|`` among them, as it is."""
    return "".join(repr(char)[1:-1] if unicodedata.category(char) in LINE_BREAKING else char for char in text)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table; a cell's ``|`` is escaped and a line break becomes a space, so each cell keeps its column."""
    lines = [_markdown_row(header), _markdown_row(["---"] * len(header)), *(_markdown_row(row) for row in rows)]
    return "\n".join(lines)


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(cell).replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"


def close_counts_text(run: RunResult) -> str:
    """Close codes as ``1011: 10, open: 26`` (zero counts left out)."""
    counts = run.close_code_counts()
    return ", ".join(f"{label}: {n}" for label, n in counts.items() if n) or "no connections"


def close_summary(run: RunResult) -> str:
    """Close codes and the connection total, as ``1011: 10, open: 26 (36 connections)``."""
    if not run.connections:
        return "no connections"
    return f"{close_counts_text(run)} ({plural(len(run.connections), 'connection')})"


def connection_table(run: RunResult) -> str:
    """One row per connection: time, instance, client, user, close code, reason, deciding decision."""
    title = f"profile {run.profile}, variant {run.variant}: {close_summary(run)}"
    return title + "\n" + format_table(CONNECTION_COLUMNS, [connection_row(c) for c in run.connections])
