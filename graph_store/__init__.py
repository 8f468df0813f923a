"""Graph store: Cypher over the neo4j driver (Neo4j 5 in production, the ArcadeDB Bolt server locally)."""

from .errors import GraphRejected, GraphUnavailable
from .rows import interaction_rows, item_rows
from .store import GraphStore

__all__ = ["GraphRejected", "GraphStore", "GraphUnavailable", "interaction_rows", "item_rows"]
