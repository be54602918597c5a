"""Objections (异议, issue 15): a holder contests an origin's entry; the origin resolves it."""
