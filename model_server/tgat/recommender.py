"""The temporal GAT behind the recommender contract, with the serving pieces the stream worker calls:

    observe(batch)            fold events into the buffer; with auto_refresh, re-embed the affected nodes
    observe_items(items)      item text/category/brand -> features; new items are embedded at once
    affected_nodes(batch)     endpoints + (layers-1) hops of nodes that sample them, fan-out bounded
    refresh(nodes)            one batched forward for those nodes into the embedding store
    sweep_stale(max_nodes)    refresh nodes the fan-out bound left stale; `staleness` counts them
    rebuild_from_edges(...)   warm start from the graph store's (user, item, type, last_ts) edges
    recommend(users, k, ...)  top-K with `because`: the user's most-attended neighbours behind each item
"""
from __future__ import annotations

from typing import Sequence

import torch

from stream.events import Item

from ..contract import InteractionBatch, Recommender
from .embedding_store import EmbeddingStore
from .features import USER
from .graph_state import EVENT_TYPES, TemporalGraph, type_index
from .model import TemporalGAT, TGATConfig
from .neighbours import EMPTY
from .train import TrainConfig, train
from .text_encoder import TextEncoder, encoder_available, item_text


def pick_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class TGATRecommender(Recommender):
    name = "streamrec"
    # fit() streams the validation part itself (to early-stop on it), so its state after fit is
    # "everything before the test"; the evaluation harness then does not observe validation again
    observes_validation_in_fit = True
    # the state is the set of edges with their newest times (+ sets of seen pairs): observing an event again
    # changes nothing, so a live worker may refresh lists before the graph store confirmed which events are new
    observe_is_idempotent = True

    def __init__(self, config: TGATConfig | None = None, train_config: TrainConfig | None = None, *,
                 device: str | torch.device = "auto", text: bool | str = "auto", frozen: bool = False,
                 auto_refresh: bool = True, max_fanout: int = 2048, sweep_per_observe: int | None = None,
                 refresh_chunk: int = 8192, seed: int = 0, exact_items: bool = True):
        """frozen=True is the static baseline: after fit, observe() only registers ids (no state updates).
        sweep_per_observe: stale nodes refreshed after each observe (None = all of them: exact state).
        exact_items: score() first refreshes stale catalogue items (exact); False serves their last embedding
        until the background sweep reaches them (bounded staleness, the hot path of a live worker)."""
        super().__init__()
        self.config = config or TGATConfig()
        self.train_config = train_config or TrainConfig(seed=seed)
        self.device = pick_device(device)
        self.text = encoder_available() if text == "auto" else bool(text)
        self.frozen, self.auto_refresh = frozen, auto_refresh
        self.max_fanout, self.sweep_per_observe, self.refresh_chunk = max_fanout, sweep_per_observe, refresh_chunk
        self.seed, self.exact_items = seed, exact_items
        torch.manual_seed(seed)
        self.model = TemporalGAT(self.config).to(self.device).eval()
        self.graph = TemporalGraph(self.config.k, self.config.text_dim, self.device)
        self.store = EmbeddingStore(self.config.dim, self.config.k, self.device, hidden_layers=self.config.layers - 1)
        self.model_version = "untrained"
        self.train_report: dict = {}
        self._encoder: TextEncoder | None = None
        self._last_touched = torch.zeros(0, dtype=torch.long, device=self.device)
        self._node_id_cache: list[str] = []  # node -> id, for explanations
        self._item_inputs: dict[int, int] = {}  # item index -> hash of the (title, category, brand) applied
        self._fitted = False

    def version(self) -> str:
        return self.model_version

    # -- learning ------------------------------------------------------------------------------
    def fit(self, history: InteractionBatch, validation: InteractionBatch | None = None) -> None:
        torch.manual_seed(self.seed)
        validation = validation if validation is not None and len(validation) else None
        for part in [history] + ([validation] if validation is not None else []):
            users, items = self.users.add(part.users), self.items.add(part.items)
            self.history.add(users, items, part.types)
        self._sync()
        inputs = self.model.inputs
        for table, n in ((inputs.id_embedding, self.graph.num_nodes),
                         (inputs.category_embedding, len(self.graph.side.categories)),
                         (inputs.brand_embedding, len(self.graph.side.brands))):
            start = table.rows
            table.ensure(n)
            table.init_rows(start, n)
        self.model.to(self.device)
        self.train_report = train(self.model, self.graph, history, validation, self.users, self.items,
                                  self.train_config)
        self.model.eval()
        self._fitted = True
        from .checkpoint import content_hash
        self.model_version = content_hash(self)
        self.store.clear()
        self.refresh(torch.arange(self.graph.num_nodes, device=self.device))

    @property
    def fit_log(self) -> list[dict]:
        """Per epoch: training loss and the validation figures early stopping chose on (report.json's fit_log)."""
        log = []
        for record in self.train_report.get("epochs", []):
            entry = {"epoch": record["epoch"], "loss": round(record["loss"], 4)}
            for name in ("mrr", "ndcg@20", "recall@20", "popularity_weight", "own_recency_weight",
                         "new_user_popularity_weight"):
                if name in record.get("validation", {}):
                    entry[f"val_{name}"] = round(record["validation"][name], 4)
            log.append(entry)
        return log

    # -- state -----------------------------------------------------------------------------------
    def _sync(self) -> torch.Tensor:
        new = self.graph.sync(self.users.ids, self.items.ids)
        self.store.ensure(self.graph.num_nodes)
        return new

    def _observe(self, batch: InteractionBatch, users: torch.Tensor, items: torch.Tensor) -> None:
        self._sync()
        if self.frozen and self._fitted:
            return
        self._last_touched = self.graph.insert(users, items, type_index(batch.types), torch.tensor(batch.ts))
        self._invalidate_hidden(self._last_touched)
        if self.auto_refresh:
            self.refresh(self.affected_nodes())
            self.sweep_stale(self.sweep_per_observe)

    def observe_items(self, items: Sequence[Item]) -> None:
        items = list({item.item_id: item for item in items}.values())  # the last record of an item wins
        super().observe_items(items)
        # an item record that changes nothing (a re-delivery, a catalogue re-sent unchanged) costs no encoding
        applied = self._item_inputs
        index, changed = [], []
        for position, item in zip(self.items.lookup(item.item_id for item in items), items):
            key = hash((item.title, item.category, item.brand))
            if applied.get(position) != key:
                applied[position] = key
                index.append(position)
                changed.append(item)
        items = changed
        if not items:
            return
        self._sync()
        vectors = None
        if self.text:
            texts = [item_text(i.title, i.category, i.brand) for i in items]
            if any(texts):
                if self._encoder is None:
                    self._encoder = TextEncoder(self.device)
                vectors = self._encoder.encode(texts)
        self.graph.side.set(index, vectors, [i.category for i in items], [i.brand for i in items])
        nodes = self.graph.item_node[torch.tensor(index, device=self.device)]
        self._invalidate_hidden(torch.zeros(0, dtype=torch.long, device=self.device), inputs_changed=nodes)
        if self.frozen and self._fitted:
            return
        # an item's input changed: it and everything within `layers` hops that reads it must be re-embedded
        if self.auto_refresh and self._fitted:
            self.refresh(self.affected_nodes(nodes, hops=self.config.layers))

    def affected_nodes(self, batch: InteractionBatch | torch.Tensor | None = None, hops: int | None = None) -> torch.Tensor:
        """Nodes to re-embed now after `batch` was observed (default: the last observed batch): its endpoints
        and the nodes that sample them, `layers - 1` hops out. Beyond max_fanout the sampling nodes (the
        least recently active first) are marked stale instead and left to sweep_stale()."""
        if batch is None:
            endpoints = self._last_touched
        elif isinstance(batch, InteractionBatch):
            users = torch.tensor(self.users.lookup(batch.users), device=self.device)
            items = torch.tensor(self.items.lookup(batch.items), device=self.device)
            endpoints = torch.unique(torch.cat([self.graph.user_node[users], self.graph.item_node[items]]))
        else:
            endpoints = torch.unique(batch.to(self.device))
        hops = self.config.layers - 1 if hops is None else hops
        reached, frontier = endpoints, endpoints
        for _ in range(hops):
            frontier = self.graph.buffer.samplers_of(frontier)
            seen = torch.zeros(self.graph.num_nodes, dtype=torch.bool, device=self.device)
            seen[reached] = True
            frontier = frontier[~seen[frontier]]
            if frontier.numel() == 0:
                break
            reached = torch.cat([reached, frontier])
        extra = reached[endpoints.numel():]
        budget = max(self.max_fanout - endpoints.numel(), 0)
        if extra.numel() > budget:
            recency = self.graph.buffer.reference_time(extra)
            order = torch.argsort(recency, descending=True, stable=True)
            self.store.mark_stale(extra[order[budget:]])
            extra = extra[order[:budget]]
        return torch.unique(torch.cat([endpoints, extra]))

    @torch.no_grad()
    def refresh(self, nodes: torch.Tensor) -> int:
        """Re-embed `nodes` from the current state (batched forwards of refresh_chunk targets), reading the
        cached lower layers (recomputed first where invalid)."""
        nodes = torch.unique(nodes.to(self.device))
        if self.model.training:
            self.model.eval()
        last = self.config.layers - 1
        for chunk in nodes.split(self.refresh_chunk):
            z, attention = self.model.embed_layer(self.graph, last, chunk, lambda below: self._hidden(last, below),
                                                  attention=True)
            self.store.write(chunk, z, attention, self.graph.buffer.nbr[chunk])
        return int(nodes.numel())

    def _hidden(self, depth: int, nodes: torch.Tensor) -> torch.Tensor:
        """Layer-`depth` outputs of sorted unique `nodes` (depth 0: the inputs), from the cache where valid."""
        if depth == 0:
            return self.model.node_inputs(self.graph, nodes)
        cache, valid = self.store.hidden[depth - 1], self.store.hidden_fresh[depth - 1]
        missing = nodes[~valid[nodes]]
        for chunk in missing.split(self.refresh_chunk):
            cache[chunk] = self.model.embed_layer(self.graph, depth - 1, chunk, lambda below: self._hidden(depth - 1, below))
            valid[chunk] = True
        return cache[nodes]

    def _invalidate_hidden(self, rows_changed: torch.Tensor, inputs_changed: torch.Tensor | None = None) -> None:
        """Marks the cached layer outputs that depend on changed buffer rows (new edges) or changed inputs (item
        text): a node's layer-(d+1) output reads its own row, its own layer-d output and its neighbours'."""
        dirty = rows_changed
        if inputs_changed is not None and inputs_changed.numel():
            dirty = torch.unique(torch.cat([rows_changed, inputs_changed, self.graph.buffer.samplers_of(inputs_changed)]))
        for depth in range(self.config.layers - 1):
            self.store.invalidate_hidden(depth, dirty)
            if depth + 1 < self.config.layers - 1:
                dirty = torch.unique(torch.cat([rows_changed, dirty, self.graph.buffer.samplers_of(dirty)]))

    def sweep_stale(self, max_nodes: int | None = None) -> int:
        if max_nodes == 0:
            return 0
        return self.refresh(self.store.stale_nodes(max_nodes))

    @property
    def staleness(self) -> int:
        return self.store.staleness()

    @torch.no_grad()
    def full_recompute(self) -> torch.Tensor:
        """Every node's embedding in one forward from the current state (what the store must equal)."""
        self.model.eval()
        return self.model.embed_all(self.graph)

    def rebuild_from_edges(self, users: Sequence[str], items: Sequence[str], types: Sequence[str],
                           last_ts: Sequence[int], chunk: int = 200_000) -> None:
        """Warm start: replace the neighbour state with the graph store's edges (one per user, item, type;
        any order) and re-embed everything. The graph store is the system of record: the seen/purchased history
        is replaced too."""
        user_index, item_index = self.users.add(users), self.items.add(items)
        self.history = type(self.history)()
        self.history.add(user_index, item_index, list(types))
        self._sync()
        self.graph.clear()
        u, i, t, ts = (torch.tensor(user_index), torch.tensor(item_index), type_index(list(types)), torch.tensor(last_ts))
        for start in range(0, len(u), chunk):
            self.graph.insert(u[start:start + chunk], i[start:start + chunk], t[start:start + chunk], ts[start:start + chunk])
        self.store.clear()
        self.refresh(torch.arange(self.graph.num_nodes, device=self.device))

    def recent_neighbours(self, node_id: str, kind: str = "user") -> list[tuple[str, str, int]]:
        """The buffer's row for a user or item as (neighbour id, event type, last_ts), newest first: the same
        list as the graph store's `ORDER BY r.last_ts DESC, neighbour.id LIMIT K` (ties then by type)."""
        index = (self.users if kind == "user" else self.items).get(node_id)
        if index < 0:
            return []
        node = (self.graph.user_node if kind == "user" else self.graph.item_node)[index]
        nbr, etype, ts = (t.tolist() for t in self.graph.buffer.rows(node[None]))
        other = self.items if kind == "user" else self.users
        names = list(EVENT_TYPES) + ["other"]
        return [(other.id_of(self.graph.node_local[n].item()), names[e], s)
                for n, e, s in zip(nbr[0], etype[0], ts[0]) if n != EMPTY]

    # -- ranking ---------------------------------------------------------------------------------
    @torch.no_grad()
    def score(self, users: Sequence[str]) -> torch.Tensor:
        n_items = len(self.items)
        index = torch.tensor(self.users.lookup(users), dtype=torch.long, device=self.device)
        known = index >= 0
        user_nodes = self.graph.user_node[index[known]]
        item_nodes = self.graph.item_node[:n_items]
        missing = self.store.needing_refresh(torch.cat([user_nodes, item_nodes]) if self.exact_items else user_nodes)
        if not self.exact_items:  # items never computed cannot wait for the sweep
            missing = torch.cat([missing, item_nodes[~self.store.fresh[item_nodes]]])
        if missing.numel():
            self.refresh(missing)
        z_items = self.store.embedding[item_nodes]
        if bool(known.all()):  # the usual case of a live batch: no copy into a second matrix
            return self.model.score_catalogue(self.graph, user_nodes, self.store.embedding[user_nodes], z_items).cpu()
        scores = torch.empty(len(users), n_items, device=self.device)
        if bool(known.any()):
            scores[known] = self.model.score_catalogue(self.graph, user_nodes, self.store.embedding[user_nodes], z_items)
        scores[~known] = self.model.score_new_user(self.graph, self._cold_start_user(), z_items)
        return scores.cpu()

    def _cold_start_user(self) -> torch.Tensor:
        """A user never seen: the mean embedding of the known users (with the model's item prior added by
        score_new_user, a popularity-like list)."""
        nodes = self.graph.user_node[self.store.fresh[self.graph.user_node]]
        if nodes.numel() == 0:
            return torch.zeros(self.config.dim, device=self.device)
        return self.store.embedding[nodes].mean(0)

    def recommend(self, users: Sequence[str], k: int, exclude: str = "purchased", because: int = 3) -> list[list[dict]]:
        if not users or not len(self.items) or not because:
            lists = super().recommend(users, k, exclude)
            for entries in lists:
                for entry in entries:
                    entry["because"] = []
            return lists
        values, indices = self.top_k(users, k, exclude)
        lists = self._lists(values, indices)
        index = torch.tensor(self.users.lookup(users), dtype=torch.long, device=self.device)
        known = index >= 0
        reasons = [[] for _ in users]  # per row and rank: the entry's because (new users have no neighbours)
        if bool(known.any()):
            rows = torch.nonzero(known).squeeze(1)
            explained = self._explain(self.graph.user_node[index[rows]], self.graph.item_node[indices[rows.cpu()].to(self.device)],
                                      because)
            for row, per_rank in zip(rows.tolist(), explained):
                reasons[row] = per_rank
        for entries, per_rank in zip(lists, reasons):
            for rank, entry in enumerate(entries):
                entry["because"] = per_rank[rank] if per_rank else []
        return lists

    def _node_ids(self) -> list[str]:
        """Node -> user or item id, extended as nodes are added (nodes are never renumbered)."""
        cache = self._node_id_cache
        if len(cache) < self.graph.num_nodes:
            kinds = self.graph.node_kind[len(cache):].tolist()
            locals_ = self.graph.node_local[len(cache):].tolist()
            users, items = self.users.ids, self.items.ids
            cache.extend((users if kind == USER else items)[local] for kind, local in zip(kinds, locals_))
        return cache

    @torch.no_grad()
    def _explain(self, user_nodes: torch.Tensor, item_nodes: torch.Tensor, limit: int) -> list[list[list[dict]]]:
        """Per user and recommended item (item_nodes [U, k]): up to `limit` of the user's attended neighbours,
        weighted by the attention they got x their similarity to the item, as [{"id", "attention"}]. One batched
        computation; each user's at most K neighbour records are built once and shared by its items."""
        attended, attention = self.store.attended[user_nodes], self.store.attention[user_nodes]  # [U, K]
        valid = attended != EMPTY
        normalise = torch.nn.functional.normalize
        z_items = normalise(self.store.embedding[item_nodes], dim=-1)                         # [U, k, d]
        z_attended = normalise(self.store.embedding[attended.clamp(min=0)], dim=-1)           # [U, K, d]
        similarity = torch.bmm(z_items, z_attended.transpose(1, 2))                            # cosine [U, k, K]
        weight = attention[:, None, :] * (1.0 + similarity.clamp(min=0))
        weight = weight.masked_fill(~valid[:, None, :], float("-inf"))  # empty slots sort last
        slots = torch.topk(weight, min(limit, weight.shape[-1]), dim=-1).indices              # [U, k, limit]
        node_ids = self._node_ids()
        attended_rows = attended.tolist()
        attention_rows = ((attention * 1e4).round() / 1e4).tolist()
        counts = valid.sum(1).clamp(max=slots.shape[-1]).tolist()
        explained = []
        for neighbours, weights, count, per_item in zip(attended_rows, attention_rows, counts, slots.tolist()):
            records = [{"id": node_ids[n], "attention": a} if n != EMPTY else None for n, a in zip(neighbours, weights)]
            explained.append([[records[s] for s in item_slots[:count]] for item_slots in per_item])
        return explained

    # -- checkpoints -----------------------------------------------------------------------------
    def save(self, directory, metadata: dict | None = None, include_state: bool = True):
        from .checkpoint import save_checkpoint
        return save_checkpoint(self, directory, metadata, include_state)

    @classmethod
    def load(cls, path, device: str | torch.device = "auto", **overrides) -> "TGATRecommender":
        from .checkpoint import load_checkpoint
        return load_checkpoint(path, device, **overrides)

    # -- diversity -------------------------------------------------------------------------------
    def item_vectors(self) -> torch.Tensor:
        """The items' embeddings from the store ([len(self.items), dim], on the model's device): the
        diversity control's similarity is their cosine (contract.Recommender.item_vectors)."""
        return self.store.embedding[self.graph.item_node[:len(self.items)]]
