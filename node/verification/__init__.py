"""Stored data that verifies itself (issue 13): every log the node holds re-checked against
its signed checkpoints, leaf by leaf, and the list state against its leaves."""
