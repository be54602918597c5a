from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.config import load_settings, parse_hostport
from node.errors import ConfigError
from node.home import init_home
from node.regions import lookup_region, validate_region


@pytest.mark.parametrize(
    ("code", "name"),
    [("370100", "济南市"), ("620100", "兰州市"), ("140100", "太原市"), ("110000", "北京市")],
)
def test_known_regions(code: str, name: str) -> None:
    region = validate_region(code)
    assert region.name == name
    assert region.current


def test_historical_region_is_known_but_not_current() -> None:
    region = lookup_region("110103")  # 崇文区, merged in 2010
    assert region is not None
    assert not region.current
    assert region.name == "崇文区"


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("37010", "six digits"),
        ("37010a", "six digits"),
        ("999999", "not a GB/T 2260"),
        ("370199", "not a"),
    ],
)
def test_bad_regions(code: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        validate_region(code)


@given(st.text(max_size=10))
def test_region_lookup_never_crashes(text: str) -> None:
    region = lookup_region(text)
    assert region is None or region.code == text


@pytest.mark.parametrize("bad", ["7443", ":7443", "host:", "host:99999", "host:port"])
def test_bad_addresses(bad: str) -> None:
    with pytest.raises(ValueError, match="address"):
        parse_hostport(bad)


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init_home(tmp_path / "h", name="jinan", region="370100", listen="127.0.0.1:7001")
    assert load_settings(tmp_path / "h").listen == "127.0.0.1:7001"
    monkeypatch.setenv("CREDITNODE_LISTEN", "127.0.0.1:7002")
    monkeypatch.setenv("CREDITNODE_HEARTBEAT_SECONDS", "2.5")
    s = load_settings(tmp_path / "h")
    assert s.listen == "127.0.0.1:7002"
    assert s.heartbeat_seconds == 2.5


def test_bad_config_names_file_and_field(tmp_path: Path) -> None:
    paths = init_home(tmp_path / "h", name="jinan", region="370100")
    text = paths.config.read_text().replace('"370100"', '"999999"')
    paths.config.write_text(text)
    with pytest.raises(ConfigError, match=r"creditnode\.toml: region: region code 999999"):
        load_settings(tmp_path / "h")
    paths.config.write_text("name = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(tmp_path / "h")
    paths.config.write_text(text.replace("999999", "370100") + 'colour = "blue"\n')
    with pytest.raises(ConfigError, match="colour"):
        load_settings(tmp_path / "h")


def test_missing_home(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such node home"):
        load_settings(tmp_path / "nope")
