"""A node's key roles and its root of trust (issue 12).

- :mod:`node.keys.roles` (pure): the online roles, their validity windows and how they are
  written into TUF root metadata (``x-creditnode-…`` fields).
- :mod:`node.keys.trusted` (pure): :class:`~node.keys.trusted.TrustedRoot`, the one place that
  decides which root, and so which online key at which time, is trusted.
- :mod:`node.keys.store` (I/O): the root versions and the pending root in ``HOME/keys/root/``.
- :mod:`node.keys.ceremony` (I/O): root-init, sign-root, publish-root, rotate, revoke and the
  key listing.
- :mod:`node.keys.signers` (I/O): which of the home's private feed keys sign checkpoints now
  (every feed key valid now in the node's own root, or ``keys/feed.key`` without a root).

Why here and not in the top-level ``keys/``: the role names, the root schema and the trust
decision are the node's protocol (what a peer accepts from this node), built on python-tuf;
``keys/`` stays the primitive layer (key formats and certificates, no node concepts). The one
primitive this package needs, passphrase-sealed Ed25519 keys for the root holders, is in
``keys/_sealed.py``.
"""
