"""The audit log (issue 13): one tamper-evident record of every exchange with a peer.

:mod:`node.audit.entry` is the pure core (an entry, its canonical leaf bytes, keyed ids);
:mod:`node.audit.log` keeps the entries in a Merkle log with signed checkpoints and checks
them again (:func:`~node.audit.log.verify_audit_log`).
"""
