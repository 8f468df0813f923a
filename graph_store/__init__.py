"""Graph store: Cypher over the neo4j driver, against Neo4j 5 (your own servers, and the default local stack that
`streamrec services up` starts); the light local stack (STREAMREC_LOCAL_STACK=light) answers the same Cypher from
ArcadeDB's Bolt server."""

from .errors import GraphRejected, GraphUnavailable
from .rows import interaction_rows, item_rows
from .store import GraphStore

__all__ = ["GraphRejected", "GraphStore", "GraphUnavailable", "interaction_rows", "item_rows"]
