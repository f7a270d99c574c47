"""Text from a spec (names, tags, paths, values quoted in errors) made safe for a terminal.

A spec is data, possibly someone else's: an ESC or BEL in a run name must not retitle, recolour or
clear the user's terminal. Control characters are shown as Python escapes (``\\x1b``) instead.
"""

from __future__ import annotations

import re

# C0 controls, DEL and the C1 range (\x9b alone starts a CSI sequence on many terminals).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def _escape(match: re.Match) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def printable(value: object) -> str:
    """``str(value)`` with every control character escaped, line breaks included."""
    return _CONTROL.sub(_escape, str(value))


def printable_message(text: str) -> str:
    """A message of altlearn's own, which may span lines, with any other control escaped."""
    return _CONTROL_BUT_NEWLINE.sub(_escape, text)
