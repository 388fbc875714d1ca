"""The one exception type for user errors.

A :class:`Photo3DError` means the input or the options were wrong, not the code: the CLI
prints its message as one line on stderr and exits with status 2. Anything else that
escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class Photo3DError(Exception):
    """Bad input or options; the message says what was wrong, with the value, and what to do."""


def warn(message: str) -> None:
    """Tell the user about something we fixed for them (resized depth map, converted image)."""
    import sys

    print(f"photo3d: note: {message}", file=sys.stderr)
