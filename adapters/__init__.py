"""Importers from local credit platforms (CSV exports, registry dumps) into the node.

Each adapter turns one source format into validated rows and quarantines the rest with
file, row and reason. The canonical list CSV importer arrives with the feeds issue.
"""
