"""One error family for everything a user or operator can get wrong.

Each carries a one-line message naming what is wrong and where, and the CLI exit code.
Exit codes: 1 internal, 2 bad input, 3 configuration or home, 4 peer or network,
5 enrollment, 6 storage, 7 verification (stored or received data that does not verify).
"""

from __future__ import annotations


class CreditnodeError(Exception):
    """Base of every error the CLI reports as one line."""

    exit_code = 1


class InputError(CreditnodeError):
    """A bad argument or input file."""

    exit_code = 2


class ConfigError(CreditnodeError):
    """A missing or invalid node home or configuration."""

    exit_code = 3


class PeerError(CreditnodeError):
    """A peer could not be reached, refused us, or proved not to be who it claims."""

    exit_code = 4


class EnrollmentError(CreditnodeError):
    """A peer bundle could not be enrolled."""

    exit_code = 5


class StorageError(CreditnodeError):
    """The database could not be opened or migrated."""

    exit_code = 6


class VerificationError(CreditnodeError):
    """Stored or received data does not verify (tampering, a fork, a bad signature)."""

    exit_code = 7
