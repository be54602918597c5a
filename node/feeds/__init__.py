"""Verifiable list feeds: an append-only RFC 6962 Merkle log per origin, C2SP checkpoints,
leaves with field-level commitments, the publisher and the subscriber."""
