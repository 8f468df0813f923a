"""SASRec (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018) as a streaming baseline.

The network, written from the paper: item embeddings (shared between input and output) scaled by sqrt(d)
plus learned absolute positional embeddings over a window of the user's `max_len` most recent items, a few
blocks of causal single-head self-attention and a point-wise feed-forward layer, each applied as
x + Dropout(g(LayerNorm(x))) (Sec. III-B/C), a final LayerNorm; the user's representation is the output at the
last position and an item's score is its dot product with that item's embedding (Sec. III-D), over the whole
catalogue. Training uses the paper's loss: binary cross-entropy of the next item at every position against
one sampled negative (Sec. III-E), Adam with betas (0.9, 0.98).

How it plays the streaming protocol:
- `fit(train, validation)` trains on the training part only (each user's items in time order, cut into
  windows of max_len + 1 so every transition is trained once) and early-stops on the streaming MRR of the
  validation part; the validation pass runs on a copy of the state, so afterwards the state reflects the
  training events only and the harness observes validation itself.
- `observe(batch)` never trains: it appends the batch's items to each user's sequence, so the user's next
  score reads the grown sequence.
- Users with no observed event get all-time popularity (the network has nothing to attend to).
- Whether a user's already-seen items are moved below the unseen ones is chosen on validation (both
  rankings are measured in each validation pass): re-viewing dominates a click stream, a rating log never
  repeats an item, and the paper's sampled evaluation only ever ranks unseen items.
- Items first seen after training have no trained embedding. As inputs they are a zero item vector (the
  position still counts, so the sequence keeps its length and recency); as candidates they score just below
  the user's lowest trained item: a model that is not retrained cannot know them, and giving them an
  arbitrary vector would rank them by noise. Both rules are deterministic.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from typing import Sequence

import torch
from torch import nn

from ..contract import InteractionBatch, Recommender
from ..early_stopping import EarlyStopping
from ..streaming import RankedBatch, rank_then_observe
from .popularity import _grow
from .seen_demotion import demote_seen, reciprocal_rank_sum, selection

PAD = 0  # embedding row of padding and of items without a trained embedding (kept at zero)


class SelfAttentionBlock(nn.Module):
    """One SASRec block: causal self-attention, then a point-wise two-layer feed-forward network, each as
    x + Dropout(g(LayerNorm(x)))."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.feed_forward_norm = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
        normed = self.attention_norm(x)
        attended, _ = self.attention(normed, normed, normed, attn_mask=blocked, need_weights=False)
        x = x + self.dropout(attended)
        return x + self.dropout(self.feed_forward(self.feed_forward_norm(x)))


class SASRecNetwork(nn.Module):
    """Left-padded item rows [batch, max_len] -> hidden states [batch, max_len, dim]; the last position is the
    newest item. Positions are counted in the fixed window, so the newest item always has the same one."""

    def __init__(self, n_items: int, dim: int, max_len: int, blocks: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.max_len = heads, max_len
        self.item_embedding = nn.Embedding(n_items + 1, dim, padding_idx=PAD)
        self.position_embedding = nn.Embedding(max_len, dim)
        self.input_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(SelfAttentionBlock(dim, heads, dropout) for _ in range(blocks))
        self.final_norm = nn.LayerNorm(dim)
        self._init_embeddings(dim)

    def _init_embeddings(self, dim: int) -> None:
        """Normal with std 1/sqrt(dim), so the sqrt(dim)-scaled inputs have unit scale and the first logits are
        about N(0, 1) (torch's N(0, 1) default made them ~sqrt(dim) and the first epochs confidently wrong)."""
        for embedding in (self.item_embedding, self.position_embedding):
            nn.init.normal_(embedding.weight, std=dim**-0.5)
        with torch.no_grad():
            self.item_embedding.weight[PAD].zero_()

    def forward(self, rows: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        n, length = rows.shape
        positions = torch.arange(length, device=rows.device)
        x = self.item_embedding(rows) * math.sqrt(self.item_embedding.embedding_dim) + self.position_embedding(
            positions
        )
        x = self.input_dropout(x)
        blocked = self.attention_mask(lengths, length)
        for block in self.blocks:
            x = block(x, blocked)
        return self.final_norm(x)

    def attention_mask(self, lengths: torch.Tensor, length: int) -> torch.Tensor:
        """[batch * heads, L, L], True where attention is forbidden: every later position (causality) and every
        padding position. Each position may always attend itself, so a padding row is never fully masked (an
        all-masked row would give NaN); real positions never see padding."""
        positions = torch.arange(length, device=lengths.device)
        future = positions.view(1, -1) > positions.view(-1, 1)
        padding = positions.view(1, -1) < (length - lengths).view(-1, 1)  # [batch, L] left padding
        blocked = future.unsqueeze(0) | (
            padding.unsqueeze(1) & ~torch.eye(length, dtype=torch.bool, device=lengths.device)
        )
        return blocked.repeat_interleave(self.heads, dim=0)

    def item_vectors(self) -> torch.Tensor:
        """[n_items, dim] output embeddings of the trained items (row PAD left out)."""
        return self.item_embedding.weight[1:]


def left_pad(sequences: Sequence[Sequence[int]], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows [n, length] with the newest item last and PAD before the oldest, lengths [n]); longer sequences
    keep their newest `length` items."""
    rows = torch.full((len(sequences), length), PAD, dtype=torch.long)
    lengths = torch.zeros(len(sequences), dtype=torch.long)
    for r, sequence in enumerate(sequences):
        tail = list(sequence)[-length:]
        if tail:
            rows[r, length - len(tail) :] = torch.tensor(tail, dtype=torch.long)
        lengths[r] = len(tail)
    return rows, lengths


def training_windows(sequences: Sequence[Sequence[int]], max_len: int) -> list[list[int]]:
    """Each sequence cut from its end into windows of max_len + 1 items that overlap by one, so every
    transition (item -> next item) is in exactly one window; windows of one item teach nothing and are dropped."""
    windows = []
    for sequence in sequences:
        end = len(sequence)
        while end >= 2:
            windows.append(list(sequence[max(0, end - max_len - 1) : end]))
            end -= max_len
    return windows


class SASRec(Recommender):
    name = "sasrec"

    def __init__(
        self,
        dim: int = 50,
        max_len: int = 50,
        blocks: int = 2,
        heads: int = 1,
        dropout: float = 0.2,
        lr: float = 1e-3,
        epochs: int = 100,
        patience: int = 5,
        train_batch: int = 128,
        batch_size: int = 200,
        seed: int = 0,
        device: str | torch.device = "cpu",
        progress: bool = True,
    ) -> None:
        super().__init__()
        self.dim, self.max_len, self.n_blocks, self.heads, self.dropout = dim, max_len, blocks, heads, dropout
        self.lr, self.epochs, self.patience, self.train_batch = lr, epochs, patience, train_batch
        self.batch_size, self.seed, self.progress = batch_size, seed, progress
        self.device = torch.device(device)
        self.network: SASRecNetwork | None = None
        self.n_trained = 0  # items [0, n_trained) of the id map have an embedding (row = index + 1)
        self.sequences: dict[int, list[int]] = defaultdict(list)  # user index -> newest max_len item indices
        self.counts = torch.zeros(0, dtype=torch.float64)  # all-time item counts, for users with no events
        # Whether items the user has already seen go below the unseen ones: chosen on validation, since re-viewing
        # is the main signal of a click stream (rees46) while a rating log (MovieLens) never repeats an item.
        self.demote_seen = False
        self.fit_log: list[dict] = []
        self.params = {"dim": dim, "max_len": max_len, "blocks": blocks, "heads": heads, "dropout": dropout}

    # -- streaming state -------------------------------------------------------------------------------
    def _observe(self, batch: InteractionBatch, users: torch.Tensor, items: torch.Tensor) -> None:
        self.counts = _grow(self.counts, len(self.items))
        self.counts.index_add_(0, items, torch.ones(len(items), dtype=torch.float64))
        for user, item in zip(users.tolist(), items.tolist()):
            sequence = self.sequences[user]
            sequence.append(item)
            if len(sequence) > 2 * self.max_len:  # trim now and then, not per event
                del sequence[: -self.max_len]

    def _state(self) -> dict:
        return copy.deepcopy(
            {
                "users": self.users,
                "items": self.items,
                "history": self.history,
                "sequences": self.sequences,
                "counts": self.counts,
            }
        )

    def _restore_state(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)

    def _rows(self, item_indices: Sequence[int]) -> list[int]:
        """Embedding rows of item indices: trained items index + 1, the others PAD (a zero vector)."""
        return [i + 1 if i < self.n_trained else PAD for i in item_indices]

    # -- scoring -------------------------------------------------------------------------------------------
    def score(self, users: Sequence[str]) -> torch.Tensor:
        scores = self._network_scores(users)
        return demote_seen(self, scores, users) if self.demote_seen else scores

    def _network_scores(self, users: Sequence[str]) -> torch.Tensor:
        n_items = len(self.items)
        self.counts = _grow(self.counts, n_items)
        scores = self.counts[:n_items].float().unsqueeze(0).repeat(len(users), 1)  # the fallback rows
        indices = self.users.lookup(users)
        with_history = [r for r, u in enumerate(indices) if u >= 0 and self.sequences.get(u)]
        if self.network is None or not with_history or not self.n_trained:
            return scores
        sequences = [self._rows(self.sequences[indices[r]]) for r in with_history]
        scores[torch.tensor(with_history)] = self._sequence_scores(sequences, n_items)
        return scores

    @torch.no_grad()
    def _sequence_scores(self, sequences: list[list[int]], n_items: int) -> torch.Tensor:
        """[len(sequences), n_items] scores from the last position, all users of the call in one forward pass."""
        self.network.eval()
        rows, lengths = left_pad(sequences, self.max_len)
        hidden = self.network(rows.to(self.device), lengths.to(self.device))[:, -1]
        trained = (hidden @ self.network.item_vectors()[: self.n_trained].T).float().cpu()
        untrained = trained.min(dim=1, keepdim=True).values - 1.0  # below every trained item, see the docstring
        return torch.cat([trained, untrained.expand(-1, n_items - self.n_trained)], dim=1)

    # -- learning ------------------------------------------------------------------------------------------
    def fit(self, history: InteractionBatch, validation: InteractionBatch | None = None) -> None:
        from tqdm import tqdm

        self.observe(history)
        self.n_trained = len(self.items)
        torch.manual_seed(self.seed)  # weights and dropout
        generator = torch.Generator().manual_seed(self.seed)  # window order and negatives
        self.network = SASRecNetwork(
            self.n_trained, self.dim, self.max_len, self.n_blocks, self.heads, self.dropout
        ).to(self.device)
        optimiser = torch.optim.Adam(self.network.parameters(), lr=self.lr, betas=(0.9, 0.98))
        windows = training_windows(self._user_sequences(history), self.max_len)
        # SASRec's patience counts the epoch that stops it: `patience` epochs in a row without a better figure
        stopping: EarlyStopping[tuple[dict, bool]] = EarlyStopping(self.patience - 1)
        for epoch in tqdm(range(1, self.epochs + 1), desc="sasrec epochs", leave=False, disable=not self.progress):
            record = {"epoch": epoch, "train_loss": self._train_epoch(windows, optimiser, generator)}
            if validation is not None and len(validation):
                record["validation_mrr"], record["validation_mrr_seen_demoted"] = self._validation_mrr(validation)
            self.fit_log.append(record)
            score, demoted = selection(record, record["train_loss"])
            if stopping.stop_after(score, lambda: (copy.deepcopy(self.network.state_dict()), demoted)):
                break
        if stopping.best_state is not None:
            best_weights, self.demote_seen = stopping.best_state
            self.network.load_state_dict(best_weights)
        self.network.eval()
        self.params["demote_seen"] = int(self.demote_seen)

    def _user_sequences(self, history: InteractionBatch) -> list[list[int]]:
        """Each training user's embedding rows in time order (the events are in time order)."""
        sequences: dict[str, list[int]] = defaultdict(list)
        for user, row in zip(history.users, self._rows(self.items.lookup(history.items))):
            sequences[user].append(row)
        return list(sequences.values())

    def _train_epoch(self, windows: list[list[int]], optimiser, generator: torch.Generator) -> float:
        """One pass over the windows in a seeded random order; returns the mean loss per window."""
        self.network.train()
        total = 0.0
        order = torch.randperm(len(windows), generator=generator).tolist()
        for start in range(0, len(order), self.train_batch):
            chosen = [windows[k] for k in order[start : start + self.train_batch]]
            inputs, lengths = left_pad([w[:-1] for w in chosen], self.max_len)
            targets, _ = left_pad([w[1:] for w in chosen], self.max_len)
            negatives = self._negatives(targets, generator)
            optimiser.zero_grad()
            loss = self._loss(
                inputs.to(self.device), lengths.to(self.device), targets.to(self.device), negatives.to(self.device)
            )
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(chosen)
        return total / max(len(windows), 1)

    def _negatives(self, targets: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One uniformly drawn trained item per position that is not the position's true next item."""
        if self.n_trained < 2:
            return torch.randint(1, self.n_trained + 1, targets.shape, generator=generator)
        shift = torch.randint(1, self.n_trained, targets.shape, generator=generator)
        return (targets - 1 + shift) % self.n_trained + 1  # any row but the target, uniformly

    def _loss(self, inputs, lengths, targets, negatives) -> torch.Tensor:
        """The paper's binary cross-entropy: the true next item against one negative at every real position."""
        hidden = self.network(inputs, lengths)
        embedding = self.network.item_embedding
        positive = (hidden * embedding(targets)).sum(-1)
        negative = (hidden * embedding(negatives)).sum(-1)
        real = targets != PAD
        bce = nn.functional.binary_cross_entropy_with_logits
        return (
            bce(positive[real], torch.ones_like(positive[real]), reduction="sum")
            + bce(negative[real], torch.zeros_like(negative[real]), reduction="sum")
        ) / real.sum().clamp(min=1)

    def _validation_mrr(self, validation: InteractionBatch) -> tuple[float, float]:
        """Streaming MRR of the validation part under the harness's protocol (rank each event's item against
        every item seen before its batch, then observe the batch), with seen items kept and demoted; on a copy
        of the state that is put back."""
        saved = self._state()
        kept = demoted = 0.0

        def rank(batch: RankedBatch) -> None:
            nonlocal kept, demoted
            scores = self._network_scores(batch.users)
            kept += reciprocal_rank_sum(scores[batch.rows], batch.targets)
            demoted += reciprocal_rank_sum(demote_seen(self, scores, batch.users)[batch.rows], batch.targets)

        # the catalogue is the model's own item map: observe registers each batch's items, scores follow it
        rank_then_observe(validation, self.batch_size, self.items, set(), rank, self.observe)
        self._restore_state(saved)
        return kept / len(validation), demoted / len(validation)
