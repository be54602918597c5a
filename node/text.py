"""Data values as inert text: nothing a terminal would act on instead of showing.

Every value that comes from data (names, reasons, purposes, a peer's error details) is
hostile. A terminal acts on ESC (ANSI/CSI/OSC sequences: colours, cursor moves, links,
window titles), on the other C0 and the C1 control characters, and reorders what it shows
around the bidi controls. Those are shown here as visible escapes (``\\x1b``, ``\\u202e``).
Pure: no I/O, no rich.
"""

from __future__ import annotations

import re

# C0, DEL and C1; the bidi embeddings, overrides, isolates and marks (U+061C, U+200E/F,
# U+202A-U+202E, U+2066-U+2069); the line and paragraph separators some terminals break on.
_OTHERS = "\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f{_OTHERS}]")
# A printed block of the program's own text keeps its line breaks (LF) and tabs.
_UNSAFE_IN_BLOCK = re.compile(f"[\x00-\x08\x0b-\x1f{_OTHERS}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    # \u from DEL on: inside a JSON document printed to the console, still a valid escape.
    return f"\\x{code:02x}" if code < 0x7F else f"\\u{code:04x}"


def plain(value: object) -> str:
    """*value* as one line of inert text: every control, bidi character and line break
    (newlines included) shown as a visible escape."""
    return _UNSAFE.sub(_visible, str(value))


def inert(text: str) -> str:
    """*text* (a printed block, possibly many lines) with its line breaks and tabs kept and
    every other control or bidi character shown as a visible escape."""
    return _UNSAFE_IN_BLOCK.sub(_visible, text)


def has_unsafe(text: str) -> bool:
    """Whether *text* holds a character a terminal would act on (line breaks and tabs aside)."""
    return _UNSAFE_IN_BLOCK.search(text) is not None
