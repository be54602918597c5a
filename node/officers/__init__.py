"""Officers (issue 14): credentials of this node's own officers, the gate of the officer
listener, and the federated check it serves.

:mod:`~node.officers.directory` follows the officers table; :mod:`~node.officers.gate` admits
an officer certificate of this node that is registered and not revoked, and nothing else;
:mod:`~node.officers.consolidate` merges reports (pure); :mod:`~node.officers.check` asks every
partner and builds the answer; :mod:`~node.officers.service` is the gRPC servicer.
"""
