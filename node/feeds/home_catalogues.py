"""A node home's catalogues as its own city holds them: the list catalogue (setting
``catalogue``, default HOME/lists.toml) and the measures catalogue checked against it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from node.feeds.catalogue import Catalogue
    from node.feeds.measures import MeasureCatalogue
    from node.home import Home


def list_catalogue(home: Home) -> Catalogue:
    """The node's list catalogue."""
    from node.feeds import catalogue

    return catalogue.load(home.catalogue_path)


def measure_catalogue(home: Home) -> MeasureCatalogue:
    """The measures catalogue in force at *home* (base and city supplement), its list codes
    checked against the node's list catalogue."""
    from node.feeds import measures

    kinds = {s.code: s.kind for s in list_catalogue(home).lists}
    return measures.load_home(home.paths.root, list_kinds=kinds)
