"""Sharing policy (pure): masking patterns, sharing agreements, and the per-peer decision.

* :mod:`node.policy.masks` — the named masking and generalisation patterns;
* :mod:`node.policy.agreement` — the TOML sharing agreements, their parser and checker;
* :mod:`node.policy.reidentify` — which forms one peer receives, taken together, re-identify;
* :mod:`node.policy.decide` — what one peer receives for one purpose, and applying it.

Nothing here does I/O: the caller reads agreement files and hands their text in.
"""
