"""Statistics the plans count (issue 15): a pure core (count), the signed document (signed)
and the I/O edge that reads the database and the home's keys (collect)."""
