"""Every Cypher statement of the project, parameterised (no string-built Cypher), valid on Neo4j 5 and ArcadeDB."""

# Key constraints come before any MERGE: they are what makes MERGE on the key cheap and unique.
CONSTRAINTS = (
    "CREATE CONSTRAINT user_id IF NOT EXISTS FOR (n:User) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT item_id IF NOT EXISTS FOR (n:Item) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT category_name IF NOT EXISTS FOR (n:Category) REQUIRE n.name IS UNIQUE",
    "CREATE CONSTRAINT brand_name IF NOT EXISTS FOR (n:Brand) REQUIRE n.name IS UNIQUE",
)

# One round trip per micro-batch; see rows.py for the shape of a row and the idempotence rule.
UPSERT_INTERACTIONS = """
UNWIND $rows AS row
MERGE (u:User {id: row.user})
MERGE (i:Item {id: row.item})
MERGE (u)-[r:INTERACTED {type: row.type}]->(i)
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

# Bounded neighbourhoods: the K most recent edges per node, whatever the node's degree.
RECENT_ITEMS_OF_USERS = """
UNWIND $ids AS id
CALL (id) {
  MATCH (:User {id: id})-[r:INTERACTED]->(i:Item)
  RETURN i.id AS neighbour, r.type AS type, r.last_ts AS ts, r.count AS count
  ORDER BY r.last_ts DESC, neighbour, type LIMIT $k
}
RETURN id, collect({id: neighbour, type: type, ts: ts, count: count}) AS recent
"""

RECENT_USERS_OF_ITEMS = """
UNWIND $ids AS id
CALL (id) {
  MATCH (u:User)-[r:INTERACTED]->(:Item {id: id})
  RETURN u.id AS neighbour, r.type AS type, r.last_ts AS ts, r.count AS count
  ORDER BY r.last_ts DESC, neighbour, type LIMIT $k
}
RETURN id, collect({id: neighbour, type: type, ts: ts, count: count}) AS recent
"""

EDGES_OF_USERS = """
UNWIND $ids AS id
MATCH (u:User {id: id})-[r:INTERACTED]->(i:Item)
RETURN u.id AS user, i.id AS item, r.type AS type, r.count AS count, r.first_ts AS first_ts, r.last_ts AS last_ts
"""

ALL_EDGES = """
MATCH (u:User)-[r:INTERACTED]->(i:Item)
RETURN u.id AS user, i.id AS item, r.type AS type, r.count AS count, r.first_ts AS first_ts, r.last_ts AS last_ts
ORDER BY r.last_ts
"""

ITEMS_WITH_TEXT = """
MATCH (i:Item)
WHERE i.title IS NOT NULL OR i.category IS NOT NULL OR i.brand IS NOT NULL
RETURN i.id AS id, i.title AS title, i.category AS category, i.brand AS brand
"""

GRAPH_SIZE = """
CALL () { MATCH (u:User) RETURN count(u) AS users }
CALL () { MATCH (i:Item) RETURN count(i) AS items }
CALL () { MATCH (:User)-[r:INTERACTED]->(:Item) RETURN count(r) AS edges, sum(r.count) AS events }
RETURN users, items, edges, events
"""

DELETE_BATCH = """
MATCH (n) WITH n LIMIT $limit
DETACH DELETE n
RETURN count(*) AS deleted
"""
