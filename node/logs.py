"""Structured JSON logs (structlog over the standard library), one object per line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(level: str = "info", file: Path | None = None) -> None:
    """Route structlog and stdlib logging to stderr (or *file*) as JSON lines."""
    handler: logging.Handler = (
        logging.FileHandler(file, encoding="utf-8") if file else logging.StreamHandler(sys.stderr)
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
                structlog.processors.JSONRenderer(ensure_ascii=False),
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
