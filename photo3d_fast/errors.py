"""The one exception type for user errors, and the one printer of messages to the user.

A :class:`Photo3DError` means the input or the options were wrong, not the code: the CLI
prints its message as one line on stderr and exits with status 2. Anything else that
escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys


class Photo3DError(Exception):
    """Bad input or options; the message says what was wrong, with the value, and what to do."""


def notice(message: str, quiet: bool = False) -> None:
    """One line on stderr, ``photo3d: message``: what was chosen and why, progress of a stage.
    Nothing when ``quiet``."""
    if not quiet:
        print(f"photo3d: {message}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    """Tell the user about something we fixed for them (resized depth map, converted image)."""
    notice(f"note: {message}")
