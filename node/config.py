"""Node configuration: ``HOME/creditnode.toml``, overridden by ``CREDITNODE_*`` variables.

>>> from node.config import load_settings          # doctest: +SKIP
>>> load_settings(Path("/srv/jinan")).listen        # doctest: +SKIP
'0.0.0.0:7443'
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from keys import validate_label
from node.errors import ConfigError
from node.regions import validate_region

CONFIG_FILE = "creditnode.toml"


def parse_hostport(value: str, *, allow_zero: bool = True) -> tuple[str, int]:
    """Split ``HOST:PORT`` (IPv6 as ``[::1]:PORT``), raising ValueError with the reason."""
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"address {value!r} must be HOST:PORT")
    if not port.isdigit() or not (0 if allow_zero else 1) <= int(port) <= 65535:
        raise ValueError(f"address {value!r} has no valid port")
    return host.strip("[]"), int(port)


class NodeSettings(BaseSettings):
    """Everything a node reads at start."""

    # Every number is finite and bounded (a negative or NaN interval busy-loops or never
    # wakes), every string bounded: a bad value stops the node at start with one line.
    model_config = SettingsConfigDict(
        env_prefix="CREDITNODE_", extra="forbid", allow_inf_nan=False, str_max_length=4096
    )

    name: str
    federation: str
    region: str
    listen: str = "127.0.0.1:7443"
    advertise: str = ""
    database_url: str = ""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_file: str = ""
    heartbeat_seconds: float = Field(default=10.0, gt=0, le=3600)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=600)
    catalogue: str = ""  # the list catalogue; default HOME/lists.toml, relative to HOME
    # Candidates every resident ID and name must keep, given all the forms one peer receives
    # (node.policy.reidentify.DEFAULT_THRESHOLD); at least 2, so no clear name or recoverable ID.
    reidentification_threshold: int = Field(default=10_000, ge=2, le=10**12)
    # Oblivious pseudonym evaluations each peer may ask for: a token bucket refilled at this
    # many per second, holding at most pseudonym_burst (over it: RESOURCE_EXHAUSTED).
    pseudonym_rate: float = Field(default=2.0, gt=0, le=1_000_000)
    pseudonym_burst: int = Field(default=64, ge=1, le=1_000_000)
    # Background re-verification of stored data while serving: the share of the time it may
    # keep the database busy (it sleeps in proportion between chunks), and the pause between
    # whole passes over every log.
    verify_io_share: float = Field(default=0.1, gt=0, le=1)
    verify_interval_seconds: float = Field(default=3600.0, ge=0, le=30 * 86_400)
    # `creditnode audit report` flags an officer, or a partner, whose queries (lookups and
    # pseudonym evaluations) over the period exceed this many a day on average.
    audit_officer_daily_queries: int = Field(default=200, ge=1, le=10**9)
    audit_peer_daily_queries: int = Field(default=5_000, ge=1, le=10**9)
    # Officers' listener (OfficerService, mutual TLS with officer credentials of this node
    # only): "" serves none. Never the peer port: a peer is never admitted there.
    officer_listen: str = ""
    # The console (issue 18): HTTPS, officer client certificates required, the same officer
    # gate; "" (the default) serves none. Sessions end this many minutes after they begin.
    console_listen: str = ""
    console_session_minutes: float = Field(default=30.0, gt=0, le=24 * 60)
    # Prometheus metrics, /healthz and /readyz over plain HTTP (no data values, no client
    # certificates): localhost unless set otherwise; "" serves none.
    metrics_listen: str = "127.0.0.1:9464"
    # The metrics history `status --html` plots: the running node samples each peer's feed
    # lag and disclosures this often (0: never), and keeps this many days of samples.
    metrics_history_seconds: float = Field(default=60.0, ge=0, le=86_400)
    metrics_history_days: int = Field(default=14, ge=1, le=366)
    # How long a federated check waits for each partner's report before marking it timed out.
    check_deadline_seconds: float = Field(default=2.0, gt=0, le=60)
    # Responses (issue 15): how often a serving node pulls each partner's actions log, and the
    # days a partner has after an entry's listing date to respond to each of its measures
    # before `creditnode actions --overdue` flags it: per list code ([response_days] table),
    # else response_days_default.
    actions_pull_seconds: float = Field(default=30.0, gt=0, le=86_400)
    response_days_default: int = Field(default=15, ge=0, le=3650)
    response_days: dict[str, int] = Field(default_factory=dict, max_length=1000)
    # Holders suspend the measures they applied to a partner's entry while its origin marks it
    # under objection (recorded in the actions log), and apply them again when the mark clears.
    suspend_on_objection: bool = True

    @field_validator("name", "federation")
    @classmethod
    def _label(cls, v: str) -> str:
        return validate_label("name", v)

    @field_validator("response_days")
    @classmethod
    def _response_days(cls, v: dict[str, int]) -> dict[str, int]:
        for code, days in v.items():
            if not 1 <= len(code) <= 40 or not 0 <= days <= 3650:
                raise ValueError("response_days maps a list code to 0..3650 days")
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        validate_region(v)
        return v

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_hostport(v)
        return v

    @field_validator("officer_listen", "metrics_listen", "console_listen")
    @classmethod
    def _officer_listen(cls, v: str) -> str:
        if v:
            parse_hostport(v)
        return v

    @field_validator("advertise")
    @classmethod
    def _advertise(cls, v: str) -> str:
        if v:
            parse_hostport(v, allow_zero=False)
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs; the environment overrides them.
        return (env_settings, init_settings)


def load_settings(home: Path) -> NodeSettings:
    """Read and validate a node's configuration; ConfigError names the file and field."""
    path = home / CONFIG_FILE
    if not home.is_dir():
        raise ConfigError(f"{home}: no such node home (create one with `creditnode init`)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing (is {home} a node home?)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    try:
        return NodeSettings(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{_source(path, field)}: {msg}") from None
    except SettingsError as exc:  # a variable holding a dict or list that is not JSON
        field = str(exc).split('"')[1] if str(exc).count('"') >= 2 else ""
        raise ConfigError(f"{_source(path, field)}: not valid JSON") from None


def _source(path: Path, field: str) -> str:
    """Where a bad setting came from: its CREDITNODE_* variable (which overrides the file),
    else the file and field."""
    variable = f"CREDITNODE_{field.split('.')[0]}".upper()
    # pydantic-settings matches variable names case-insensitively.
    if any(name.upper() == variable for name in os.environ):
        return f"environment variable {variable}"
    return f"{path}: {field}"


def dump_settings(values: dict[str, Any]) -> str:
    """TOML text for flat string/number settings (JSON string escapes are valid TOML)."""
    lines = ["# creditnode node configuration; CREDITNODE_<KEY> variables override these.\n"]
    for key, value in values.items():
        if isinstance(value, bool):
            raise TypeError("boolean settings are not used")
        rendered = json.dumps(value, ensure_ascii=False) if isinstance(value, str) else str(value)
        lines.append(f"{key} = {rendered}\n")
    return "".join(lines)
