"""The CLI's consoles: on them no data value is read as markup and nothing printed reaches
the terminal as a control sequence.

By construction: strings are not markup, not highlighted and get no emoji unless a call
asks for it (only the program's own constant strings do), and every segment the console
writes has its control and bidi characters shown as visible escapes. Data values go through
:func:`data_text` (or :func:`node.text.plain`), which also shows their line breaks as ``\\n``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.style import StyleType
from rich.text import Text

from node.text import has_unsafe, inert, plain


class DataConsole(Console):
    """A rich console that never lets text act on the terminal."""

    def __init__(self, **kwargs: Any) -> None:
        for option in ("markup", "highlight", "emoji"):
            kwargs.setdefault(option, False)
        super().__init__(**kwargs)

    def render(
        self, renderable: RenderableType, options: ConsoleOptions | None = None
    ) -> Iterable[Segment]:
        return self._inert(super().render(renderable, options))

    @staticmethod
    def _inert(segments: Iterable[Segment]) -> Iterator[Segment]:
        # Rich's own cursor and screen codes travel as control segments: those pass. Text
        # segments are what a renderable holds: a control character there came from data.
        for segment in segments:
            if segment.control is None and has_unsafe(segment.text):
                yield Segment(inert(segment.text), segment.style)
            else:
                yield segment


def data_text(value: object, style: StyleType = "") -> Text:
    """A data value as a table cell or message part: one line of text, never markup."""
    return Text(plain(value), style=style)


def line(*parts: str | Text | tuple[str, StyleType]) -> Text:
    """One message from parts: the program's own words (str or (str, style)) and data values
    (as :func:`data_text`). Nothing is parsed as markup."""
    return Text.assemble(*parts)
