"""LightGCN (He, Deng, Wang, Li, Zhang & Wang, "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020) as a static baseline, with the items' layer-0 input fused with their text vectors.

The method, written from the paper:
- the graph is the user-item interaction graph of the training part (a pair is an edge once, however often it
  occurred), normalised symmetrically: Â = D^-1/2 A D^-1/2 over users and items together (Eq. 7);
- propagation is e^(k+1) = Â e^(k), with no feature transform and no nonlinearity (Eq. 3); the final vector of
  a node is the mean of its layers 0..K (Eq. 4 with α_k = 1 / (K + 1)); a score is the dot product of the
  user's and the item's final vectors (Eq. 5);
- training minimises BPR (Rendle et al., 2009) over (user, item the user has, item drawn uniformly among the
  trained items the user has not) with L2 on the layer-0 vectors of the triple, Adam (Eq. 15);
- hyper-parameters are the paper's defaults, fixed: 64 dimensions, K = 3 layers, L2 coefficient 1e-4,
  N(0, 0.1) initial embeddings (the authors' code); except the learning rate, 1e-2 instead of the paper's 1e-3,
  chosen between the two on validation (seed 0, validation MRR only): every step propagates the whole graph,
  so the cost is per step, and at 1e-3 the validation MRR was still far from its peak after 30–40 epochs
  (REES46 0.084 after 40 against 0.124 at 1e-2 after 21; Wikipedia 0.341 after 30 against 0.464 after 20). The
  number of epochs is chosen by early stopping on the validation MRR (model_server/early_stopping.py; the
  paper early-stops too), and whether a user's already-seen items go below the unseen ones is chosen on
  validation (both rankings are measured in each validation pass, as SASRec does here). Training steps hold
  `train_batch` edges (the harness's --train-batch-size, 200; the paper used 1024–2048 on graphs a hundred
  times larger).

The fusion (the issue's design, not the paper's: LightGCN has ID embeddings only): an item's layer-0 vector
is its ID embedding plus a learned linear projection (no bias) of its text vector, the 384-d MiniLM encoding
of its title, category and brand that the temporal GAT uses (model_server/tgat/text_encoder.py). Where a data
set has no item text, the ID embedding alone; where the encoder is not installed, the same (said once, loudly,
by the encoder's check).

How a static model plays the streaming protocol (model_server/evaluation/protocol.py):
- `fit(train, validation)` trains on the training part only; every validation pass runs on a copy of the id
  maps and history, which are put back, so the harness observes the validation part itself. The vectors are
  computed once, from the training graph, and never change after fit: `observe` only registers ids and each
  user's history (the base class), as static_gat does.
- Items outside the training graph: with text, the text projection alone, as an isolated node of the graph
  would have it (its layers 1..K are zero, so its final vector is the projection / (K + 1)); without text they
  score just below the user's lowest known item (the rule of SASRec here: a model that is not retrained cannot
  know them, and an arbitrary vector would rank them by noise).
- Users outside the training graph: the mean of the final vectors of the items they have observed since (a
  fold-in at scoring time; the graph and the vectors stay as trained); a user with no event, or none of whose
  items has a vector, gets the items' popularity in the training part.
"""

from __future__ import annotations

import copy
from typing import Callable, Sequence

import torch
from torch import nn

from streamrec.schema import Item

from ..contract import InteractionBatch, Recommender
from ..early_stopping import EarlyStopping
from ..ids import IdMap
from ..streaming import RankedBatch, rank_then_observe
from .seen_demotion import demote_seen, reciprocal_rank_sum, selection

TEXT_DIM = 384  # model_server/tgat/text_encoder.py's MiniLM vectors


def normalized_adjacency(users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int) -> torch.Tensor:
    """Â = D^-1/2 A D^-1/2 of the bipartite graph of the distinct (user, item) pairs, as a sparse
    [n_users + n_items]² matrix: users are nodes 0..n_users-1, item i is node n_users + i. A node without an
    edge has an empty row (nothing propagates to it)."""
    keys = torch.unique(users.long() * n_items + items.long())
    u, i = keys // n_items, keys % n_items
    degree = torch.zeros(n_users + n_items, dtype=torch.float32)
    degree.index_add_(0, u, torch.ones(len(u)))
    degree.index_add_(0, n_users + i, torch.ones(len(i)))
    weight = (degree[u] * degree[n_users + i]).rsqrt()
    rows = torch.cat([u, n_users + i])
    cols = torch.cat([n_users + i, u])
    n = n_users + n_items
    return torch.sparse_coo_tensor(
        torch.stack([rows, cols]), torch.cat([weight, weight]), (n, n), check_invariants=True
    ).coalesce()


def propagate(adjacency: torch.Tensor, layer0: torch.Tensor, layers: int) -> torch.Tensor:
    """The mean of e^(0), Â e^(0), …, Â^K e^(0) (Eq. 3 and 4 with α_k = 1 / (K + 1))."""
    layer, total = layer0, layer0
    for _ in range(layers):
        layer = torch.sparse.mm(adjacency, layer)
        total = total + layer
    return total / (layers + 1)


class LightGCNNetwork(nn.Module):
    """The layer-0 vectors: ID embeddings of users and of the items with a training edge, plus for items with
    text a linear projection of the text vector."""

    def __init__(self, n_users: int, n_items: int, dim: int, trained: torch.Tensor, text: torch.Tensor | None):
        super().__init__()
        self.user_embedding = nn.Embedding(n_users, dim)
        self.item_embedding = nn.Embedding(n_items, dim)
        nn.init.normal_(self.user_embedding.weight, std=0.1)
        nn.init.normal_(self.item_embedding.weight, std=0.1)
        self.register_buffer("trained", trained.float().unsqueeze(1))  # items outside the graph: no ID part
        self.text_projection = nn.Linear(TEXT_DIM, dim, bias=False) if text is not None else None
        self.register_buffer("text", text if text is not None else torch.zeros(n_items, 0))

    def layer0(self) -> tuple[torch.Tensor, torch.Tensor]:
        items = self.item_embedding.weight * self.trained
        if self.text_projection is not None:
            items = items + self.text_projection(self.text)
        return self.user_embedding.weight, items

    def forward(self, adjacency: torch.Tensor, layers: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(final vectors of every node [n_users + n_items, dim], layer-0 users, layer-0 items)."""
        users, items = self.layer0()
        return propagate(adjacency, torch.cat([users, items]), layers), users, items


def bpr_loss(
    final: torch.Tensor,
    users0: torch.Tensor,
    items0: torch.Tensor,
    n_users: int,
    users: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    l2: float,
) -> torch.Tensor:
    """Mean BPR loss of the triples plus l2 · ½(‖e_u^(0)‖² + ‖e_i^(0)‖² + ‖e_j^(0)‖²) / batch (Eq. 15, as the
    authors' code scales it)."""
    u, i, j = final[users], final[n_users + positives], final[n_users + negatives]
    bpr = nn.functional.softplus(-((u * i).sum(1) - (u * j).sum(1))).mean()
    regular = (users0[users].pow(2).sum() + items0[positives].pow(2).sum() + items0[negatives].pow(2).sum()) / 2
    return bpr + l2 * regular / len(users)


class LightGCN(Recommender):
    name = "lightgcn"

    def __init__(
        self,
        dim: int = 64,
        layers: int = 3,
        lr: float = 1e-2,
        l2: float = 1e-4,
        epochs: int = 100,
        patience: int = 5,
        train_batch: int = 200,
        batch_size: int = 200,
        seed: int = 0,
        device: str | torch.device = "cpu",
        progress: bool = True,
        text: bool | str = "auto",
        encode: Callable[[list[str]], torch.Tensor] | None = None,
    ) -> None:
        """`text`: "auto" fuses item text where the encoder is installed and an item record has text; False never.
        `encode` (texts -> [n, 384]) replaces the MiniLM encoder (tests)."""
        super().__init__()
        self.dim, self.layers, self.lr, self.l2 = dim, layers, lr, l2
        self.epochs, self.patience, self.train_batch, self.batch_size = epochs, patience, train_batch, batch_size
        self.seed, self.progress, self.device = seed, progress, torch.device(device)
        self.use_text, self._encode = text, encode
        self.text_vectors = torch.zeros(0, TEXT_DIM)  # by item index; zero rows: no text
        self.has_text = torch.zeros(0, dtype=torch.bool)
        self.network: LightGCNNetwork | None = None
        self.n_users_fit = self.n_items_fit = 0
        self.user_final = torch.zeros(0, dim)
        self.item_final = torch.zeros(0, dim)  # items [0, n_items_fit): final vectors (zero: no vector)
        self.item_known = torch.zeros(0, dtype=torch.bool)
        self.popularity = torch.zeros(0)  # training counts, the rows of users without a vector
        self.demote_seen = False
        self.fit_log: list[dict] = []
        self.params: dict = {"dim": dim, "layers": layers, "l2": l2, "train_batch": train_batch}
        self._table: tuple[int, torch.Tensor, torch.Tensor] | None = None  # (n items, vectors, known) cache

    # -- item text -----------------------------------------------------------------------------------
    def observe_items(self, items: Sequence[Item]) -> None:
        items = list({item.item_id: item for item in items}.values())
        super().observe_items(items)
        if self.use_text is False or not items:
            return
        from ..tgat.text_encoder import item_text

        texts = [item_text(i.title, i.category, i.brand) for i in items]
        chosen = [k for k, t in enumerate(texts) if t]
        if not chosen:
            return
        encode = self._encode or self._minilm()
        if encode is None:
            return
        vectors = encode([texts[k] for k in chosen]).float().cpu()
        index = torch.tensor(self.items.lookup([items[k].item_id for k in chosen]), dtype=torch.long)
        self._grow_text(len(self.items))
        self.text_vectors[index] = vectors
        self.has_text[index] = True
        self._table = None

    def _minilm(self) -> Callable[[list[str]], torch.Tensor] | None:
        from ..tgat.text_encoder import TextEncoder, encoder_available

        if not encoder_available():
            return None
        encoder = TextEncoder(self.device)
        self._encode = encoder.encode
        return encoder.encode

    def _grow_text(self, n: int) -> None:
        if self.text_vectors.shape[0] < n:
            extra = n - self.text_vectors.shape[0]
            self.text_vectors = torch.cat([self.text_vectors, torch.zeros(extra, TEXT_DIM)])
            self.has_text = torch.cat([self.has_text, torch.zeros(extra, dtype=torch.bool)])

    # -- streaming state: ids and history only (the base class); the vectors are the training graph's -------
    def _observe(self, batch: InteractionBatch, users: torch.Tensor, items: torch.Tensor) -> None:
        pass

    def _state(self) -> dict:
        return copy.deepcopy({"users": self.users, "items": self.items, "history": self.history})

    def _restore_state(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)

    # -- scoring ---------------------------------------------------------------------------------------
    def item_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """([n_items, dim] final item vectors, [n_items] bool: the item has one). Items of the training graph
        have theirs; an item outside it with text has its text projection / (K + 1) (an isolated node's)."""
        n = len(self.items)
        if self._table is not None and self._table[0] == n:
            return self._table[1], self._table[2]
        vectors = torch.zeros(n, self.dim)
        known = torch.zeros(n, dtype=torch.bool)
        fitted = min(n, self.n_items_fit)
        vectors[:fitted], known[:fitted] = self.item_final[:fitted], self.item_known[:fitted]
        self._grow_text(n)
        network = self.network
        if network is not None and network.text_projection is not None:
            later = torch.nonzero(self.has_text[:n] & ~known).view(-1)
            if len(later):
                with torch.no_grad():
                    projected = network.text_projection(self.text_vectors[later].to(self.device)).float().cpu()
                vectors[later], known[later] = projected / (self.layers + 1), True
        self._table = (n, vectors, known)
        return vectors, known

    def item_vectors(self) -> torch.Tensor | None:
        return self.item_table()[0] if self.network is not None else None

    def score(self, users: Sequence[str]) -> torch.Tensor:
        scores = self._network_scores(users)
        return demote_seen(self, scores, users) if self.demote_seen else scores

    def user_table(self, users: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """([len(users), dim] user vectors, [len(users)] bool: the user has one): the training graph's, else the
        mean of the known items the user has observed."""
        items, known = self.item_table()
        index = torch.tensor(self.users.lookup(users), dtype=torch.long)
        vectors = torch.zeros(len(users), self.dim)
        has = (index >= 0) & (index < self.n_users_fit)
        vectors[has] = self.user_final[index[has]]
        later = index.clone()
        later[has] = -1  # only users outside the training graph are folded in
        rows, columns = self.history.excluded(later, "seen")
        keep = columns < len(items)
        rows, columns = rows[keep], columns[keep]
        keep = known[columns]
        rows, columns = rows[keep], columns[keep]
        counts = torch.zeros(len(users)).index_add_(0, rows, torch.ones(len(rows)))
        sums = torch.zeros(len(users), self.dim).index_add_(0, rows, items[columns])
        folded = counts > 0
        vectors[folded] = sums[folded] / counts[folded].unsqueeze(1)
        return vectors, has | folded

    def _network_scores(self, users: Sequence[str]) -> torch.Tensor:
        n = len(self.items)
        popularity = torch.zeros(n)
        fitted = min(n, self.popularity.shape[0])
        popularity[:fitted] = self.popularity[:fitted]
        scores = popularity.unsqueeze(0).repeat(len(users), 1)  # the rows of users without a vector
        if self.network is None or not n:
            return scores.to(self.device)
        items, known = self.item_table()
        vectors, has = self.user_table(users)
        if bool(has.any()):
            rows = vectors[has] @ items.T
            if not bool(known.all()):  # items without a vector: just below the row's lowest known item
                floor = rows[:, known].min(dim=1, keepdim=True).values - 1.0 if bool(known.any()) else rows[:, :1]
                rows[:, ~known] = floor.expand(-1, int((~known).sum()))
            scores[has] = rows
        return scores.to(self.device)

    # -- learning --------------------------------------------------------------------------------------
    def fit(self, history: InteractionBatch, validation: InteractionBatch | None = None) -> None:
        from tqdm import tqdm

        self.observe(history)
        torch.manual_seed(self.seed)  # the initial embeddings
        generator = torch.Generator().manual_seed(self.seed)  # edge order and negatives
        users = torch.tensor(self.users.lookup(history.users), dtype=torch.long)
        items = torch.tensor(self.items.lookup(history.items), dtype=torch.long)
        self.n_users_fit, self.n_items_fit = len(self.users), len(self.items)
        n_users, n_items = self.n_users_fit, self.n_items_fit
        self.popularity = torch.zeros(n_items).index_add_(0, items, torch.ones(len(items)))
        trained = self.popularity > 0
        self._grow_text(n_items)
        fuse = self.use_text is not False and bool(self.has_text[:n_items].any())
        text = self.text_vectors[:n_items].clone() if fuse else None
        self.params["text"] = int(fuse)
        adjacency = normalized_adjacency(users, items, n_users, n_items).to(self.device)
        self.network = LightGCNNetwork(n_users, n_items, self.dim, trained, text).to(self.device)
        optimiser = torch.optim.Adam(self.network.parameters(), lr=self.lr)
        edges = torch.unique(users * n_items + items)
        pool = torch.nonzero(trained).view(-1)  # negatives are drawn among the trained items
        # patience counts the epoch that stops it: `patience` epochs in a row without a better figure (as SASRec)
        stopping: EarlyStopping[tuple[dict, bool]] = EarlyStopping(self.patience - 1)
        epochs = tqdm(range(1, self.epochs + 1), desc="lightgcn epochs", leave=False, disable=not self.progress)
        for epoch in epochs:
            loss = self._train_epoch(adjacency, edges, n_items, pool, optimiser, generator)
            record: dict = {"epoch": epoch, "train_loss": round(loss, 5)}
            self._embed(adjacency)
            if validation is not None and len(validation):
                kept, demoted = self._validation_mrr(validation, history)
                record["validation_mrr"], record["validation_mrr_seen_demoted"] = round(kept, 5), round(demoted, 5)
            self.fit_log.append(record)
            figure, demote = selection(record, loss)
            if stopping.stop_after(figure, lambda: (copy.deepcopy(self.network.state_dict()), demote)):
                break
        if stopping.best_state is not None:
            weights, self.demote_seen = stopping.best_state
            self.network.load_state_dict(weights)
        self._embed(adjacency)
        self.params["demote_seen"] = int(self.demote_seen)
        self.params["epochs_trained"] = len(self.fit_log)

    def _train_epoch(self, adjacency, edges, n_items, pool, optimiser, generator) -> float:
        """One pass over the distinct training edges in a seeded random order, `train_batch` edges a step, each
        with one negative; returns the mean loss per step."""
        network = self.network
        network.train()
        order = edges[torch.randperm(len(edges), generator=generator)]
        total, steps = 0.0, 0
        for start in range(0, len(order), self.train_batch):
            keys = order[start : start + self.train_batch]
            users, positives = keys // n_items, keys % n_items
            negatives = self._negatives(users, n_items, pool, edges, generator)
            optimiser.zero_grad()
            final, users0, items0 = network(adjacency, self.layers)
            loss = bpr_loss(
                final,
                users0,
                items0,
                self.n_users_fit,
                users.to(self.device),
                positives.to(self.device),
                negatives.to(self.device),
                self.l2,
            )
            loss.backward()
            optimiser.step()
            total, steps = total + float(loss.detach()), steps + 1
        return total / max(steps, 1)

    @staticmethod
    def _negatives(users, n_items, pool, edges, generator, tries: int = 10) -> torch.Tensor:
        """An item of `pool` per user, drawn uniformly again (up to `tries` times) where the user has it."""
        negatives = pool[torch.randint(len(pool), (len(users),), generator=generator)]
        for _ in range(tries):
            clash = torch.isin(users * n_items + negatives, edges)
            if not bool(clash.any()):
                break
            negatives[clash] = pool[torch.randint(len(pool), (int(clash.sum()),), generator=generator)]
        return negatives

    @torch.no_grad()
    def _embed(self, adjacency: torch.Tensor) -> None:
        """The final vectors of the training graph's nodes under the current weights."""
        self.network.eval()
        final, _, _ = self.network(adjacency, self.layers)
        final = final.float().cpu()
        self.user_final, self.item_final = final[: self.n_users_fit], final[self.n_users_fit :]
        self.item_known = self.popularity > 0
        if self.network.text_projection is not None:
            self.item_known = self.item_known | self.has_text[: self.n_items_fit]
        self._table = None

    def _validation_mrr(self, validation: InteractionBatch, history: InteractionBatch) -> tuple[float, float]:
        """Streaming MRR of the validation part under the harness's protocol (the candidates are the items of the
        events before each batch, not every item whose record came in advance), seen items kept and demoted; on
        a copy of the ids and history, put back afterwards."""
        saved = self._state()
        catalogue = IdMap()
        catalogue.add(history.items)
        kept = demoted = 0.0

        def rank(batch: RankedBatch) -> None:
            nonlocal kept, demoted
            columns = torch.tensor(self.items.lookup(catalogue.ids[: batch.catalogue_size]), dtype=torch.long)
            scores = self._network_scores(batch.users).cpu()
            demoted_scores = demote_seen(self, scores.clone(), batch.users)
            kept += reciprocal_rank_sum(scores[batch.rows][:, columns], batch.targets)
            demoted += reciprocal_rank_sum(demoted_scores[batch.rows][:, columns], batch.targets)

        rank_then_observe(validation, self.batch_size, catalogue, set(history.users), rank, self.observe)
        self._restore_state(saved)
        self._table = None
        return kept / len(validation), demoted / len(validation)


__all__ = ["LightGCN", "LightGCNNetwork", "bpr_loss", "normalized_adjacency", "propagate"]
