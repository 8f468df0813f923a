"""What a failed graph query means for the records in it: wait and try again, or give up on those records.

The driver's errors fall in three groups (Neo4j's status codes: Neo.TransientError.*, Neo.ClientError.*,
Neo.DatabaseError.*, plus the driver's own connection errors):
- the server cannot answer now (down, restarting, a leader change, a timeout, a lock or memory limit): every
  retryable error, every connection error, every server-side DatabaseError;
- the server refuses this worker, whatever the records (credentials, permissions, a missing database, Cypher it
  does not understand): an operator must fix the set-up; retrying is right, dead-lettering the stream is not;
- the server refuses these rows and always will (a type or value error caused by the data, e.g. an edge property
  another tool wrote with a type streamrec cannot add to): the only kind a record can be blamed for.
"""

from __future__ import annotations

import asyncio

from neo4j.exceptions import AuthError, ClientError, CypherSyntaxError, DriverError, Forbidden, Neo4jError

SETUP_CODES = {  # client errors that are the deployment's, not the records'
    "Neo.ClientError.Database.DatabaseNotFound": "the database does not exist: set STREAMREC_NEO4J_DATABASE",
    "Neo.ClientError.Statement.AccessMode": "the graph server refuses writes here: point STREAMREC_NEO4J_URI at "
    "the cluster's writer (neo4j://)",
}


class GraphUnavailable(RuntimeError):
    """The graph server cannot take the query now or refuses this worker: retried, not the records' fault."""


class GraphRejected(RuntimeError):
    """The graph server refuses these rows and always will; the message is its reason."""


def one_line(error: BaseException, limit: int = 400) -> str:
    """The error's own words on one line (a server error's message without the driver's field labels)."""
    text = " ".join(str(getattr(error, "message", None) or error).split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit] + " ..."


def classify(error: Exception) -> Exception:
    """`error` from the driver as GraphUnavailable or GraphRejected, with a message an operator can act on."""
    code = getattr(error, "code", None) or ""
    if isinstance(error, Neo4jError) and error.is_retryable():  # includes an expired authorisation
        return GraphUnavailable(f"{code}: {one_line(error)}")
    if isinstance(error, AuthError):
        return GraphUnavailable(
            f"the graph server refused the credentials: check STREAMREC_NEO4J_USER and "
            f"STREAMREC_NEO4J_PASSWORD ({code})"
        )
    if isinstance(error, Forbidden):
        return GraphUnavailable(
            f"the graph user may not run streamrec's queries: grant it read and write access "
            f"({code}: {one_line(error)})"
        )
    if code in SETUP_CODES:
        return GraphUnavailable(f"{SETUP_CODES[code]} ({code})")
    if isinstance(error, CypherSyntaxError):
        return GraphUnavailable(
            f"the graph server does not understand streamrec's Cypher (Neo4j 5.26 or newer is "
            f"needed): {code}: {one_line(error)}"
        )
    if isinstance(error, ClientError):
        return GraphRejected(f"{code}: {one_line(error)}")
    if isinstance(error, (Neo4jError, DriverError, OSError, asyncio.TimeoutError)):
        return GraphUnavailable(one_line(error))
    return error  # not the driver's: a bug of ours, left as it is
