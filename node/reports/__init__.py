"""Signed credit reports (issue 14): the national public credit report's structure over this
node's feed, as a DSSE envelope signed by the node's report key, verifiable offline.

:mod:`~node.reports.payload` is the pure core (sections, items, canonical JSON, the border's
check of a report), :mod:`~node.reports.envelope` signs and verifies (pure),
:mod:`~node.reports.build` reads the store (the I/O edge) and
:mod:`~node.reports.render` renders the printable HTML.
"""
