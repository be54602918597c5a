"""Entry ids are RFC 9562 UUIDv7 in the 32-hex form, strictly increasing in one process."""

import uuid

import pytest

from node.feeds import ids


def test_entry_id_is_a_uuid7_with_the_rfc_variant_and_its_time() -> None:
    text = ids.entry_id(at_ms=1_700_000_000_123)
    assert len(text) == 32 and text == text.lower()
    u = uuid.UUID(hex=text)
    assert u.version == 7
    assert u.variant == uuid.RFC_4122
    assert int(text[:12], 16) >= 1_700_000_000_123  # never before the clock asked


def test_entry_ids_increase_within_a_millisecond_and_when_the_clock_steps_back() -> None:
    made = [ids.entry_id(at_ms=1_800_000_000_000) for _ in range(1000)]
    made.append(ids.entry_id(at_ms=1_000))  # a clock that stepped back
    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(uuid.UUID(hex=m).version == 7 for m in made)


def test_random_overflow_moves_to_the_next_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "_last", (2_000_000_000_000, (1 << 74) - 1))
    text = ids.entry_id(at_ms=2_000_000_000_000)
    assert int(text[:12], 16) == 2_000_000_000_001
    assert uuid.UUID(hex=text).version == 7


def test_uuid7_value_refuses_out_of_range_parts() -> None:
    with pytest.raises(ValueError):
        ids.uuid7_value(1 << 48, 0)
    with pytest.raises(ValueError):
        ids.uuid7_value(0, 1 << 74)
    assert ids.uuid7_value(0, 0) == (0x7 << 76) | (0b10 << 62)
