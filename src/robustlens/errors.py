"""Errors that robustlens reports to a person in one line.

`BadInput` is raised for anything the *user* got wrong (a file, an argument, a
model that does not fit the contract).  The CLI turns it into ``error: <msg>``
on stderr and exit code 2, with no traceback.  Anything else is a bug (exit 1).
"""

from __future__ import annotations


class BadInput(ValueError):
    """The user's input is wrong; the message names the culprit and what was expected."""


def bad(msg: str) -> BadInput:
    """Shorthand: ``raise bad("--grid azimuth: stop must be > start")``."""
    return BadInput(msg)


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (or its type name), for one-line errors."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:limit]


def printable(text: str) -> str:
    """``text`` with bytes that were not UTF-8 (a latin-1 file name arrives as surrogate
    escapes) shown as ``\\xe9``: safe to write into UTF-8 files, NetCDF attributes and logs."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
