"""Prometheus metrics of a streamrec process, named in base units. No per-user or per-item labels."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# latency buckets from 1 ms to 2 min: freshness targets are 50 ms (p50) and 250 ms / 1 s (p99); under load batches
# took several seconds and freshness p99 reached ~9 s during rebalances, so the top buckets keep that worst case
# (and a few times more) measurable instead of all of it landing in +Inf
SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0)
SIZES = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)

EVENTS = Counter(
    "streamrec_events_total", "Interaction records consumed, by event type and outcome", ["type", "outcome"]
)
DEAD_LETTERS = Counter("streamrec_dead_letters_total", "Records sent to the dead-letter topic, by reason", ["reason"])
ITEMS = Counter("streamrec_items_total", "Item records consumed, by outcome", ["outcome"])
BATCH_SIZE = Histogram("streamrec_batch_size_events", "Interaction records per micro-batch", buckets=SIZES)
STAGE_SECONDS = Histogram(
    "streamrec_stage_seconds",
    "Time of one step of a micro-batch, by stage: intake and arrival (ages of its oldest and "
    "newest record when taken), validate, graph_upsert (one batched write), refresh (the model "
    "host's part: observe = neighbourhoods + forward, then rank = top-K), publish (lists sent "
    "and acked)",
    ["stage"],
    buckets=SECONDS,
)
# not a stage: the whole span of a batch, in which the graph upsert and the publication overlap (they run in lanes)
BATCH_SECONDS = Histogram(
    "streamrec_batch_seconds",
    "Time from taking a micro-batch until its events are acked (written and published)",
    buckets=SECONDS,
)
FRESHNESS = Histogram(
    "streamrec_freshness_seconds",
    "Event appended to Kafka (record timestamp) until the list reflecting it is published",
    buckets=SECONDS,
)
LISTS_PUBLISHED = Counter("streamrec_lists_published_total", "Recommendation lists published", ["model"])
BATCH_RETRIES = Counter("streamrec_batch_retries_total", "Micro-batches retried after a failure, by stage", ["stage"])
CONSUMER_LAG = Gauge(
    "streamrec_consumer_lag_events",
    "Records of the input topic not yet processed (broker high-water mark - next offset to process)",
    ["partition"],
)
GROUP_LAG = Gauge(
    "streamrec_group_lag_events",
    "Records of the input topic, over all its partitions, that the consumer group has not committed past "
    "(end offsets - committed offsets, read from the broker whoever holds each partition; stream/group_lag.py); "
    "-1 until first read",
)
GROUP_LAG.set(-1)
ASSIGNED_PARTITIONS = Gauge(
    "streamrec_assigned_partitions",
    "Partitions of the input topic the consumer group gave this worker (0 while it waits outside the group)",
)
GRAPH_WRITE_STALL = Gauge(
    "streamrec_graph_write_stall_seconds",
    "How long this worker has been unable to write to the graph server: since the oldest graph write that no "
    "success has followed (0 while writes succeed), or since it began waiting at start-up to join its group; at "
    "STREAMREC_WRITE_STALL_LEAVE_S it leaves the group",
)
FOLLOW_LAG = Gauge(
    "streamrec_follow_lag_events",
    "Records of the input topic, over all partitions, not yet folded into this worker's model by the "
    "replica feed (stream/replica.py); -1 while it is not running",
)
FOLLOW_LAG.set(-1)
FOLLOW_DELAY = Histogram(
    "streamrec_follow_delay_seconds",
    "Event appended to Kafka until the replica feed folded it into this worker's model: how far "
    "this worker's lists lag behind other workers' partitions (stream/replica.py)",
    buckets=SECONDS,
)
MODEL_EVENTS = Counter(
    "streamrec_model_events_total",
    "Valid events handed to this worker's model, by path (agent: its own partitions; feed: the replica feed of "
    "the others) and outcome (folded, or skipped because the model held them already)",
    ["path", "outcome"],
)
STALE_NODES = Gauge("streamrec_stale_nodes", "Nodes whose embedding awaits the background refresh")
RETENTION_CUTOFF = Gauge(
    "streamrec_retention_cutoff_ms",
    "Event time (epoch ms) before which the model has forgotten the edges (STREAMREC_RETENTION_DAYS); 0: none yet",
)
GRAPH_PRUNED_TO = Gauge(
    "streamrec_graph_pruned_to_ms",
    "Event time (epoch ms) before which this worker last deleted the graph's edges (the retention); 0: not yet",
)
GPU_MEMORY = Gauge(
    "streamrec_gpu_memory_bytes",
    "GPU memory allocated by torch in a worker's process (the "
    "model_host; GPU hosts only), labelled as streamrec_process_resident_memory_bytes",
    ["process"],
)
CHECKPOINTS_REJECTED = Counter(
    "streamrec_checkpoints_rejected_total",
    "Checkpoints not loaded (no digest, altered, unreadable, or not plain tensors)",
)
MODEL_INFO = Gauge(
    "streamrec_model_info",
    "The model serving lists (value 1): version is its content hash, "
    "version_name the promoted version folder (empty for the baseline)",
    ["model", "version", "version_name"],
)
