"""Structured JSON logs (structlog over the standard library), one object per line."""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import sys
from pathlib import Path
from typing import Any

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


# JSON escapes C0 itself; with ensure_ascii off (Chinese names stay readable) DEL, C1 and the
# bidi controls would reach a terminal tailing the log raw. A JSON \u escape decodes the same.
_RAW = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _json_line(obj: Any, **kwargs: Any) -> str:
    """One log object as JSON with no character a terminal would act on."""
    return _RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(obj, **kwargs))


def configure_logging(level: str = "info", file: Path | None = None) -> None:
    """Route structlog and stdlib logging to stderr (or *file*) as JSON lines."""
    # A log file is reopened when logrotate moves it away (no copytruncate needed).
    handler: logging.Handler = (
        logging.handlers.WatchedFileHandler(file, encoding="utf-8")
        if file
        else logging.StreamHandler(sys.stderr)
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Records from other libraries (grpc, alembic, asyncio) become JSON lines too.
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(_json_line, ensure_ascii=False),
            ],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(_LEVELS[level])
    logging.getLogger("alembic").setLevel(max(_LEVELS[level], logging.WARNING))
    # Drivers' debug lines carry statements with their bound values (aiosqlite logs each call
    # with its arguments): IDs, names, pseudonyms. Not even at debug level.
    logging.getLogger("aiosqlite").setLevel(max(_LEVELS[level], logging.INFO))
    logging.getLogger("sqlalchemy").setLevel(max(_LEVELS[level], logging.WARNING))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        cache_logger_on_first_use=False,
    )
