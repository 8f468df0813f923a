"""The temporal GAT behind the recommender contract: what the stream worker and the harness call.

    fit(history, validation)  train (tgat/train.py), then embed every node
    observe(batch)            fold events into the buffer; with auto_refresh, re-embed the affected nodes
    observe_items(items)      item text/category/brand -> features (tgat/item_inputs.py); new items embedded at once
    score(users)              full-catalogue scores from the stored embeddings (stale ones refreshed first)
    recommend(users, k, ...)  top-K with `because` (tgat/explain.py)
    rebuild_from_edges(...)   warm start from the graph store's (user, item, type, last_ts) edges (or a page
                              at a time: begin_rebuild, rebuild_page, finish_rebuild)
    save / load               checkpoints (tgat/checkpoint.py)

What to re-embed after a change, the fan-out bound and the sweep of stale nodes live in tgat/refresh.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from streamrec.schema import Item

from ..contract import InteractionBatch, Recommender
from ..ids import IdMap
from . import checkpoint
from .embedding_store import EmbeddingStore
from .explain import NodeNames, explain
from .graph_state import EVENT_TYPES, TemporalGraph, type_index
from .item_inputs import ItemInputs
from .model import TemporalGAT, TGATConfig, load_weights
from .neighbours import EMPTY
from .refresh import DEFAULT_MAX_FANOUT, Refresher
from .text_encoder import encoder_available
from .train import BATCH_COST, CHOSEN_WEIGHTS, TrainConfig, train


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
    supports_retention = True  # the state is a function of the edges kept (graph_state.forget_before)

    def __init__(
        self,
        config: TGATConfig | None = None,
        train_config: TrainConfig | None = None,
        *,
        device: str | torch.device = "auto",
        text: bool | str = "auto",
        frozen: bool = False,
        auto_refresh: bool = True,
        max_fanout: int = DEFAULT_MAX_FANOUT,
        sweep_per_observe: int | None = None,
        refresh_chunk: int = 8192,
        seed: int = 0,
        exact_items: bool = True,
        defer_users: bool = False,
    ):
        """frozen=True is the static baseline: after fit, observe() only registers ids (no state updates).
        sweep_per_observe: stale nodes refreshed after each observe (None = all of them: exact state).
        exact_items: score() first refreshes stale catalogue items (exact); False serves their last embedding
        until the background sweep reaches them (bounded staleness, the hot path of a live worker).
        defer_users: users reached only as samplers of a batch's nodes are marked stale, not re-embedded at once
        (tgat/refresh.py); with exact_items=False, the serving configuration."""
        super().__init__()
        self.config = config or TGATConfig()
        self.train_config = train_config or TrainConfig(seed=seed)
        self.device = pick_device(device)
        self.frozen, self.auto_refresh = frozen, auto_refresh
        self.sweep_per_observe, self.seed, self.exact_items = sweep_per_observe, seed, exact_items
        torch.manual_seed(seed)
        self.model = TemporalGAT(self.config).to(self.device).eval()
        self.graph = TemporalGraph(self.config.k, self.config.text_dim, self.device)
        self.store = EmbeddingStore(self.config.dim, self.config.k, self.device, hidden_layers=self.config.layers - 1)
        self.refresher = Refresher(
            self.model,
            self.graph,
            self.store,
            max_fanout=max_fanout,
            refresh_chunk=refresh_chunk,
            defer_users=defer_users,
        )
        self.item_inputs = ItemInputs(encoder_available() if text == "auto" else bool(text), self.device)
        self.model_version = "untrained"
        self.train_report: dict = {}
        self._last_touched = torch.zeros(0, dtype=torch.long, device=self.device)
        self._node_names = NodeNames()
        self._fitted = False
        self._trained_ids = (0, 0)  # (users, items) the weights were fitted with: a restart always knows these

    def version(self) -> str:
        return self.model_version

    @property
    def text(self) -> bool:
        """Whether item text is encoded (False when the encoder is not installed)."""
        return self.item_inputs.text

    # -- learning ------------------------------------------------------------------------------
    def fit(self, history: InteractionBatch, validation: InteractionBatch | None = None) -> None:
        torch.manual_seed(self.seed)
        validation = validation if validation is not None and len(validation) else None
        for part in [history] + ([validation] if validation is not None else []):
            users, items = self.users.add(part.users), self.items.add(part.items)
            self.history.add(users, items, part.types, part.ts)
        self._sync()
        inputs = self.model.inputs
        for table, n in (
            (inputs.id_embedding, self.graph.num_nodes),
            (inputs.category_embedding, len(self.graph.side.categories)),
            (inputs.brand_embedding, len(self.graph.side.brands)),
        ):
            start = table.rows
            table.ensure(n)
            table.init_rows(start, n)
        self.model.to(self.device)
        self.train_report = train(
            self.model, self.graph, history, validation, self.users, self.items, self.train_config
        )
        self.model.eval()
        self._fitted = True
        self._trained_ids = (len(self.users), len(self.items))
        self.model_version = checkpoint.content_hash(self)
        self.refresher.refresh_all()

    @property
    def fit_log(self) -> list[dict]:
        """Per epoch: training loss and the validation figures early stopping chose on (report.json's fit_log)."""

        def figures(validation: dict) -> dict:
            names = ("mrr", "ndcg@20", "recall@20", "mrr_returning", "mrr_new") + CHOSEN_WEIGHTS
            return {f"val_{name}": round(validation[name], 4) for name in names if name in validation}

        report = self.train_report
        log = [
            {
                "epoch": record["epoch"],
                "loss": round(record["loss"], 4),
                **{name: record[name] for name in BATCH_COST if name in record},
                **figures(record.get("validation", {})),
            }
            for record in report.get("epochs", [])
        ]
        if "validation_batch_size" in report:  # the weights chosen again in the test part's batches
            log.append(
                {
                    "epoch": f"{report['best_epoch']}, in test batches of {report['validation_batch_size']}",
                    **figures(report["validation"]),
                }
            )
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
        self.refresher.invalidate(self._last_touched)
        if self.auto_refresh:
            self.refresh(self.affected_nodes())
            self.sweep_stale(self.sweep_per_observe)

    def observe_items(self, items: Sequence[Item]) -> None:
        items = list({item.item_id: item for item in items}.values())  # the last record of an item wins
        super().observe_items(items)
        index, items = self.item_inputs.changed(self.items.lookup(item.item_id for item in items), items)
        if not items:
            return
        self._sync()
        self.item_inputs.apply(self.graph, index, items)
        nodes = self.graph.item_node[torch.tensor(index, device=self.device)]
        self.refresher.invalidate(torch.zeros(0, dtype=torch.long, device=self.device), inputs_changed=nodes)
        if self.frozen and self._fitted:
            return
        # an item's input changed: it and everything within `layers` hops that reads it must be re-embedded
        if self.auto_refresh and self._fitted:
            self.refresh(self.affected_nodes(nodes, hops=self.config.layers))

    def affected_nodes(
        self, batch: InteractionBatch | torch.Tensor | None = None, hops: int | None = None
    ) -> torch.Tensor:
        """Nodes to re-embed now after `batch` was observed (default: the last observed batch): its endpoints
        and the nodes that sample them (tgat/refresh.py)."""
        if batch is None:
            endpoints = self._last_touched
        elif isinstance(batch, InteractionBatch):
            users = torch.tensor(self.users.lookup(batch.users), device=self.device)
            items = torch.tensor(self.items.lookup(batch.items), device=self.device)
            endpoints = torch.cat([self.graph.user_node[users], self.graph.item_node[items]])
        else:
            endpoints = batch.to(self.device)
        return self.refresher.affected(endpoints, hops)

    def refresh(self, nodes: torch.Tensor) -> int:
        return self.refresher.refresh(nodes.to(self.device))

    def sweep_stale(self, max_nodes: int | None = None) -> int:
        return self.refresher.sweep(max_nodes)

    @property
    def staleness(self) -> int:
        return self.store.staleness()

    def full_recompute(self) -> torch.Tensor:
        return self.refresher.full_recompute()

    def begin_rebuild(self) -> None:
        """Warm start: the neighbour state and the seen/purchased history are replaced by the graph store's edges
        (the system of record), read in pages; the checkpoint's weights stay."""
        self.history = type(self.history)()
        self.graph.clear()
        self._rebuild_parts: list[torch.Tensor] = []
        self.newest_event_ts, self.retention_cutoff = None, None

    def rebuild_page(
        self, users: Sequence[str], items: Sequence[str], types: Sequence[str], last_ts: Sequence[int]
    ) -> None:
        """A page of edges (one per user, item, type): their ids and history now, their (user, item, type, time)
        kept as 32 bytes an edge until finish_rebuild folds them all in."""
        user_index, item_index = self.users.add(users), self.items.add(items)
        self.history.add(user_index, item_index, list(types), last_ts)
        if len(last_ts):
            newest = max(int(t) for t in last_ts)
            self.newest_event_ts = newest if self.newest_event_ts is None else max(self.newest_event_ts, newest)
        columns = (torch.tensor(user_index), torch.tensor(item_index), type_index(list(types)), torch.tensor(last_ts))
        self._rebuild_parts.append(torch.stack(columns))

    def finish_rebuild(self, chunk: int = 200_000) -> None:
        """Folds every page's edges in oldest first, the order the stream brought them: a node's K newest edges and
        a pair's newest time do not depend on it, but the decayed popularity sums (float64) do in their last bits,
        and a restarted worker's lists must not depend on the pages the graph was read in."""
        self._sync()
        edges = torch.cat(self._rebuild_parts, dim=1) if self._rebuild_parts else torch.zeros(4, 0, dtype=torch.long)
        self._rebuild_parts = []
        edges = edges[:, torch.argsort(edges[3], stable=True)]
        for start in range(0, edges.shape[1], chunk):
            u, i, t, ts = edges[:, start : start + chunk]
            self.graph.insert(u, i, t, ts)
        self.enforce_retention()  # the graph store may still hold edges its pruning has not reached
        self.refresher.refresh_all()

    def _forget_before(self, cutoff: int) -> None:
        """The graph forgets the edges before `cutoff`; the embeddings that read a changed row go stale (the sweep,
        or ranking a stale user, recomputes them)."""
        rows = self.graph.forget_before(cutoff)
        if rows.numel():
            self.refresher.invalidate(rows)
            self.store.mark_stale(self.refresher.affected(rows))

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
        return [
            (other.id_of(self.graph.node_local[n].item()), names[e], s)
            for n, e, s in zip(nbr[0], etype[0], ts[0])
            if n != EMPTY
        ]

    # -- ranking ---------------------------------------------------------------------------------
    @torch.no_grad()
    def score(self, users: Sequence[str]) -> torch.Tensor:
        n_items = len(self.items)
        index = torch.tensor(self.users.lookup(users), dtype=torch.long, device=self.device)
        if self.retention_cutoff is not None:
            index = self._unknown_if_forgotten(index)
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
            scores = self.model.score_catalogue(self.graph, user_nodes, self.store.embedding[user_nodes], z_items)
            return self._without_forgotten_items(scores)
        scores = torch.empty(len(users), n_items, device=self.device)
        if bool(known.any()):
            scores[known] = self.model.score_catalogue(
                self.graph, user_nodes, self.store.embedding[user_nodes], z_items
            )
        scores[~known] = self.model.score_new_user(self.graph, self._cold_start_user(), z_items)
        return self._without_forgotten_items(scores)  # on the model's device: top_k ranks there (contract.py)

    # Under a retention, a user or item whose every edge was forgotten is known to a worker that saw it but not to one
    # that starts later from the graph (unless the checkpoint names it, or the item has a record): both serve it as
    # the later one does, as a new user and as an item not in the catalogue, so their lists stay equal.
    def _unknown_if_forgotten(self, index: torch.Tensor) -> torch.Tensor:
        nodes = self.graph.user_node[index.clamp(min=0)]
        forgotten = (index >= self._trained_ids[0]) & (self.graph.degree[nodes] == 0)
        return torch.where(forgotten, torch.full_like(index, -1), index)

    def _without_forgotten_items(self, scores: torch.Tensor) -> torch.Tensor:
        if self.retention_cutoff is None:
            return scores
        n_items = scores.shape[1]
        local = torch.arange(self._trained_ids[1], n_items, device=self.device)
        empty = local[self.graph.degree[self.graph.item_node[local]] == 0].tolist()
        forgotten = [i for i in empty if i not in self.item_inputs.described]
        if forgotten:
            scores[:, torch.tensor(forgotten, dtype=torch.long, device=scores.device)] = float("-inf")
        return scores

    def _cold_start_user(self) -> torch.Tensor:
        """A user never seen: the mean embedding of the known users (with the model's item prior added by
        score_new_user, a popularity-like list)."""
        nodes = self.graph.user_node[self.store.fresh[self.graph.user_node]]
        if nodes.numel() == 0:
            return torch.zeros(self.config.dim, device=self.device)
        return self.store.embedding[nodes].mean(0)

    def recommend(self, users: Sequence[str], k: int, exclude: str = "purchased", because: int = 3) -> list[list[dict]]:
        """`because`: up to that many most-attended neighbours per entry; 0 leaves the field out (slimmer lists)."""
        if not because:
            return super().recommend(users, k, exclude)
        if not users or not len(self.items):
            return [[] for _ in users]
        values, indices = self.top_k(users, k, exclude)
        lists = self._lists(values, indices)
        index = torch.tensor(self.users.lookup(users), dtype=torch.long, device=self.device)
        known = index >= 0
        reasons = [[] for _ in users]  # per row and rank: the entry's because (new users have no neighbours)
        if bool(known.any()):
            rows = torch.nonzero(known).squeeze(1)
            item_nodes = self.graph.item_node[indices[rows.cpu()].to(self.device)]
            names = self._node_names.of(self.graph, self.users, self.items)
            explained = explain(self.store, names, self.graph.user_node[index[rows]], item_nodes, because)
            for row, per_rank in zip(rows.tolist(), explained):
                reasons[row] = per_rank
        for entries, per_rank in zip(lists, reasons):
            for rank, entry in enumerate(entries):
                entry["because"] = per_rank[rank] if per_rank else []
        return lists

    # -- checkpoints -----------------------------------------------------------------------------
    def save(self, directory, metadata: dict | None = None, include_state: bool = True) -> Path:
        return checkpoint.save_checkpoint(self, directory, metadata, include_state)

    @classmethod
    def load(cls, path, device: str | torch.device = "auto", **overrides) -> "TGATRecommender":
        """A checkpoint's model (tgat/checkpoint.py checks its digest and reads it without running code)."""
        saved = checkpoint.read_checkpoint(path)
        rec = cls(saved.config, saved.train_config, device=device, **overrides)
        rec.users, rec.items = IdMap(saved.users), IdMap(saved.items)
        for name, pairs in saved.history.items():
            getattr(rec.history, name).add(pairs[:, 0], pairs[:, 1])
        rec.graph.load_state_dict(saved.graph)
        if saved.legacy_seen is not None:
            pairs = saved.legacy_seen.to(rec.device)
            rec.graph.set_seen((rec.graph.user_node[pairs[:, 0]] << 32) | rec.graph.item_node[pairs[:, 1]])
        load_weights(rec.model, saved.weights)
        rec.model.to(rec.device).eval()
        rec.graph.ensure_half_lives(rec.model.chosen_half_lives())  # the recent counts the score reads
        rec.model_version, rec.train_report, rec._fitted = saved.model_version, saved.train_report, True
        rec._trained_ids = (len(rec.users), len(rec.items))
        rec.store.ensure(rec.graph.num_nodes)
        if saved.with_state:
            rec.refresher.refresh_all()
        return rec

    # -- diversity -------------------------------------------------------------------------------
    def item_vectors(self) -> torch.Tensor:
        """The items' embeddings from the store ([len(self.items), dim], on the model's device): the
        diversity control's similarity is their cosine (contract.Recommender.item_vectors)."""
        return self.store.embedding[self.graph.item_node[: len(self.items)]]
