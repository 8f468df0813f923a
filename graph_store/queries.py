"""Every Cypher statement of the project, parameterised (no string-built Cypher), valid on Neo4j 5 and ArcadeDB."""

# Key constraints come before any MERGE: they are what makes MERGE on the key cheap and unique.
CONSTRAINTS = (
    "CREATE CONSTRAINT user_id IF NOT EXISTS FOR (n:User) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT item_id IF NOT EXISTS FOR (n:Item) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT category_name IF NOT EXISTS FOR (n:Category) REQUIRE n.name IS UNIQUE",
    "CREATE CONSTRAINT brand_name IF NOT EXISTS FOR (n:Brand) REQUIRE n.name IS UNIQUE",
)

# One round trip per micro-batch; see rows.py for the shape of a row and the idempotence rule. The edge's last
# offset is read only after a write to the edge (`upsert_lock`, removed again): under read committed, a value
# read before the write lock is taken may be stale (Neo4j's operations manual, "Concurrent data access", lost
# updates), and during a rebalance a partition's old and new owner may write the same records at once: both
# read the old offset and both counted the batch (tests/graph_store/test_store.py, two writers).
UPSERT_INTERACTIONS = """
UNWIND $rows AS row
MERGE (u:User {id: row.user})
MERGE (i:Item {id: row.item})
MERGE (u)-[r:INTERACTED {type: row.type}]->(i)
SET r.upsert_lock = true
WITH r, row, CASE WHEN r.last_source = row.source THEN r.last_offset ELSE -1 END AS applied
WITH r, row, size([o IN row.offsets WHERE o <= applied]) AS replayed
WITH r, row, replayed, size(row.offsets) - replayed AS new_events
SET r.count = coalesce(r.count, 0) + new_events,
    r.first_ts = CASE WHEN new_events = 0 THEN r.first_ts
                      WHEN r.first_ts IS NULL OR row.ts_min_from[replayed] < r.first_ts THEN row.ts_min_from[replayed]
                      ELSE r.first_ts END,
    r.last_ts = CASE WHEN new_events = 0 THEN r.last_ts
                     WHEN r.last_ts IS NULL OR row.ts_max_from[replayed] > r.last_ts THEN row.ts_max_from[replayed]
                     ELSE r.last_ts END,
    r.last_source = CASE WHEN new_events = 0 THEN r.last_source ELSE row.source END,
    r.last_offset = CASE WHEN new_events = 0 THEN r.last_offset ELSE row.offsets[size(row.offsets) - 1] END
REMOVE r.upsert_lock
WITH row, replayed WHERE replayed > 0
RETURN row.k AS k, replayed
"""

# Items replace their text; category and brand become nodes of their own (the heterogeneous graph).
UPSERT_ITEMS = """
UNWIND $rows AS row
MERGE (i:Item {id: row.id})
SET i.title = row.title, i.category = row.category, i.brand = row.brand, i.price = row.price
WITH i, row
CALL (i, row) {
  WITH i, row WHERE row.category IS NOT NULL
  MERGE (c:Category {name: row.category})
  MERGE (i)-[:IN_CATEGORY]->(c)
}
CALL (i, row) {
  WITH i, row WHERE row.brand IS NOT NULL
  MERGE (b:Brand {name: row.brand})
  MERGE (i)-[:OF_BRAND]->(b)
}
RETURN count(i) AS items
"""

# Neighbourhoods, each read anchored on its node: the key lookup first, then only that node's own edges, so a
# leaf costs the same in any graph (unanchored, ArcadeDB started from every :User: 54 ms for a leaf, measured).
# Sorting the node's edges costs O(degree): no graph server keeps a node's edges ordered by a property
# (docs/benchmarks.md, Bounded reads, has the figures for hubs and leaves on both servers).
RECENT_ITEMS_OF_USERS = """
UNWIND $ids AS id
CALL (id) {
  MATCH (u:User {id: id})
  MATCH (u)-[r:INTERACTED]->(i:Item)
  RETURN i.id AS neighbour, r.type AS type, r.last_ts AS ts, r.count AS count
  ORDER BY r.last_ts DESC, neighbour, type LIMIT $k
}
RETURN id, collect({id: neighbour, type: type, ts: ts, count: count}) AS recent
"""

RECENT_USERS_OF_ITEMS = """
UNWIND $ids AS id
CALL (id) {
  MATCH (i:Item {id: id})
  MATCH (i)<-[r:INTERACTED]-(u:User)
  RETURN u.id AS neighbour, r.type AS type, r.last_ts AS ts, r.count AS count
  ORDER BY r.last_ts DESC, neighbour, type LIMIT $k
}
RETURN id, collect({id: neighbour, type: type, ts: ts, count: count}) AS recent
"""

# Results that may hold many rows come back as ONE record of row lists: the Python driver's per-record cost
# (~70 us here) dominated the warm start (18,257 edges: 1.9 s as records, 0.1-0.3 s as one list, measured).
EDGES_OF_USERS = """
UNWIND $ids AS id
MATCH (u:User {id: id})
MATCH (u)-[r:INTERACTED]->(i:Item)
RETURN collect([u.id, i.id, r.type, r.count, r.first_ts, r.last_ts]) AS rows
"""
EDGE_FIELDS = ("user", "item", "type", "count", "first_ts", "last_ts")
# The warm start's form: four columns, a missing property as `false` (collect() would drop a null and misalign the
# columns; false is neither a string nor an integer, so the edge is left out like any other unreadable one).
EDGE_COLUMNS_OF_USERS = """
UNWIND $ids AS id
MATCH (u:User {id: id})
MATCH (u)-[r:INTERACTED]->(i:Item)
RETURN collect(coalesce(u.id, false)) AS users, collect(coalesce(i.id, false)) AS items,
       collect(coalesce(r.type, false)) AS types, collect(coalesce(r.last_ts, false)) AS last_ts
"""

# The warm start reads the graph a page at a time, in key order from the unique index (keyset pagination: a
# page costs its own nodes and edges, never a scan or sort of the whole graph).
USER_IDS_AFTER = """
MATCH (u:User) WHERE u.id > $after
WITH u.id AS id ORDER BY id LIMIT $limit
RETURN collect(id) AS ids
"""

ITEMS_WITH_TEXT_AFTER = """
MATCH (i:Item) WHERE i.id > $after
WITH i ORDER BY i.id LIMIT $limit
WITH collect(i) AS page
RETURN page[-1].id AS last,
       [i IN page WHERE i.title IS NOT NULL OR i.category IS NOT NULL OR i.brand IS NOT NULL
        | [i.id, i.title, i.category, i.brand]] AS rows
"""
ITEM_FIELDS = ("id", "title", "category", "brand")

GRAPH_SIZE = """
CALL () { MATCH (u:User) RETURN count(u) AS users }
CALL () { MATCH (i:Item) RETURN count(i) AS items }
CALL () {
  MATCH (:User)-[r:INTERACTED]->(:Item)
  // a count another tool wrote with another type compares as null: it is left out instead of failing the sum
  RETURN count(r) AS edges, sum(CASE WHEN r.count >= 0 THEN r.count ELSE 0 END) AS events
}
RETURN users, items, edges, events
"""

# Bulk loading of new nodes and the edges between them (`streamrec load`, which checks first that none of the
# nodes exists: then none of the edges can): CREATE instead of MERGE (no lookup of an edge that cannot exist),
# rows as lists (the driver packs a list more cheaply than a map), nodes before the edges that find them through
# the unique index. The edges carry no last_source, so every live event on them counts as new
# (UPSERT_INTERACTIONS compares sources first).
EXISTING_NODES = """
CALL () { UNWIND $users AS id MATCH (u:User {id: id}) RETURN count(u) AS users }
CALL () { UNWIND $items AS id MATCH (i:Item {id: id}) RETURN count(i) AS items }
RETURN users, items
"""
CREATE_USERS = "UNWIND $ids AS id CREATE (:User {id: id})"
CREATE_ITEMS = "UNWIND $ids AS id CREATE (:Item {id: id})"
CREATE_EDGES = """
UNWIND $rows AS row
MATCH (u:User {id: row[0]})
MATCH (i:Item {id: row[1]})
CREATE (u)-[:INTERACTED {type: row[2], count: row[3], first_ts: row[4], last_ts: row[5]}]->(i)
"""

# The retention rule (STREAMREC_RETENTION_DAYS): edges whose newest event is before the cutoff go, a bounded batch
# per transaction (found through the index on last_ts), and a user left without edges goes with them. Items stay:
# they hold the catalogue's text, category and brand.
LAST_TS_INDEX = "CREATE INDEX interacted_last_ts IF NOT EXISTS FOR ()-[r:INTERACTED]-() ON (r.last_ts)"
FORGET_EDGES_BEFORE = """
MATCH (u:User)-[r:INTERACTED]->(:Item) WHERE r.last_ts < $cutoff
WITH u, r LIMIT $limit
DELETE r
WITH u, count(r) AS edges
CALL (u) {
  WITH u WHERE NOT EXISTS { (u)--() }
  DELETE u
}
RETURN sum(edges) AS deleted
"""

DELETE_BATCH = """
MATCH (n) WITH n LIMIT $limit
DETACH DELETE n
RETURN count(*) AS deleted
"""
