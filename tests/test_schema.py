"""Every field of every message that can cross the wire carries a classification."""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor

from node.api import audit, feeds, officers, options, pb, pseudonyms, query, witness


def _messages_of_services() -> dict[str, Descriptor]:
    found: dict[str, Descriptor] = {}
    todo = [
        t
        for file in (
            pb.DESCRIPTOR,
            feeds.DESCRIPTOR,
            query.DESCRIPTOR,
            witness.DESCRIPTOR,
            audit.DESCRIPTOR,
            pseudonyms.DESCRIPTOR,
            officers.DESCRIPTOR,
        )
        for service in file.services_by_name.values()
        for method in service.methods
        for t in (method.input_type, method.output_type)
    ]
    todo.append(feeds.LeafEntry.DESCRIPTOR)  # travels serialized inside FeedLeaf.entry
    while todo:
        d = todo.pop()
        if d.full_name in found or d.full_name.startswith("google."):
            continue  # well-known types are classified by the field that holds them
        found[d.full_name] = d
        todo.extend(f.message_type for f in d.fields if f.message_type is not None)
    return found


def test_every_field_is_classified() -> None:
    messages = _messages_of_services()
    assert {
        "creditnode.v1.ListEntry",
        "creditnode.v1.PeerStatus",
        "creditnode.v1.LookupAnswer",
    } <= set(messages)
    unclassified = [
        f"{d.full_name}.{f.name}"
        for d in messages.values()
        for f in d.fields
        if f.GetOptions().Extensions[options.sensitivity] == options.SENSITIVITY_UNSPECIFIED
    ]
    assert unclassified == []


def test_personal_fields_are_exactly_the_committed_ones() -> None:
    from node.feeds.leaf import COMMITTED_FIELDS

    personal = {options.SENSITIVITY_PERSONAL, options.SENSITIVITY_PERSONAL_SENSITIVE}
    entry = feeds.ListEntry.DESCRIPTOR
    assert {
        f.name for f in entry.fields if f.GetOptions().Extensions[options.sensitivity] in personal
    } == COMMITTED_FIELDS
