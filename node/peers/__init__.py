"""Talking to peers: mutual TLS (``transport``), the gate every call passes (``gate``), the
directory of enrolled peers (``directory``), enrollment from bundles (``enrollment``), calling a
peer (``client``), liveness (``heartbeat``) and the interceptor base the gate and the border
share (``interceptors``)."""
