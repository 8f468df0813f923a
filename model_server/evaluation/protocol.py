"""The streaming evaluation protocol (the TGB / TGN convention), the same for every model.

1. Events in time order are split chronologically by position: the first 70 % train, the next 15 %
   validation, the last 15 % test.
2. `model.fit(train, validation)` — the model learns on the training part and may early-stop on the
   validation part. Afterwards its state must reflect the training events only...
3. ...and the harness observes the validation events in batches (never scored), so the test starts from
   the state "everything before the test". A model whose fit streams the validation part itself (TGN keeps
   the memory of its best epoch's validation pass, as PyG's example and TGB do) sets the class attribute
   `observes_validation_in_fit = True` and the harness skips this step.
4. The test part is processed in batches of `batch_size` events: every event of a batch is first ranked
   using only what came before the batch (the model has not observed any event of the batch), then the
   whole batch is observed. No negatives are sampled: the true item is ranked against the catalogue.

The catalogue is every item that occurred in an event before the batch (train, validation and earlier test
batches), in order of first appearance; it is kept by the harness, not the model, so no model can widen or
narrow it. An event whose item has never occurred before cannot be ranked: it is a miss and is reported in
the new-item breakdown (TGB instead ranks among every destination node of the whole data set).

The split and the batch loop are model_server/streaming.py's (`split_stream`, `rank_then_observe`), the ones
every model's fit uses on its validation part.
"""

from __future__ import annotations

import gc
import math
import os
import resource
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from .. import ranking
from ..diversity import intra_list_diversity
from . import repeats
from ..contract import InteractionBatch, Recommender
from ..ids import IdMap
from ..streaming import RankedBatch, batches, rank_then_observe

TOP_K = 20  # length of the lists used for coverage and diversity
# at most this many points of MRR over test time in a report: runs of consecutive batches are pooled beyond it
# (ranked per event, Wikipedia's test part is 23,621 batches: 12 MB of report for one plot's line)
MAX_TIME_POINTS = 500


# -- memory: peak resident set size of this process ----------------------------------------------------
def _status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Linux lets a process reset its peak RSS (VmHWM) by writing 5 to clear_refs; False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return hwm / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def current_rss_mib() -> float:
    rss = _status_kib("VmRSS")
    return rss / 1024.0 if rss is not None else math.nan


# -- item vectors for intra-list diversity ---------------------------------------------------------------
def item_vectors(history: InteractionBatch, catalogue: IdMap, dim: int = 64, seed: int = 0) -> torch.Tensor:
    """L2-normalised rank-`dim` embeddings of the item x user incidence of `history` (a truncated SVD, so the
    cosine of two items approximates the cosine of their user sets). Model-independent: every model's lists
    are judged with the same vectors. Items without history get a zero row."""
    users = IdMap()
    rows = catalogue.lookup(history.items)
    cols = users.add(history.users)
    n_items, n_users = len(catalogue), len(users)
    if not n_items or not n_users:
        return torch.zeros(n_items, 1)
    pairs = torch.tensor([rows, cols], dtype=torch.long).unique(dim=1)
    values = torch.ones(pairs.shape[1])
    norms = torch.zeros(n_items).index_add_(0, pairs[0], values).sqrt()
    values = values / norms[pairs[0]]
    matrix = torch.sparse_coo_tensor(pairs, values, (n_items, n_users), check_invariants=True).coalesce()
    q = max(1, min(dim, n_items, n_users))
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    u, s, _ = torch.svd_lowrank(matrix, q=q, niter=4)
    torch.random.set_rng_state(state)
    vectors = u * s
    return vectors / vectors.norm(dim=1, keepdim=True).clamp(min=1e-12)


# -- the run --------------------------------------------------------------------------------------------
@dataclass
class StreamResult:
    """Everything recorded for one model; per-event tensors are aligned with the test events."""

    model: str
    greater: torch.Tensor
    equal: torch.Tensor
    new_user: torch.Tensor  # bool: the user had no event before the batch
    new_item: torch.Tensor  # bool: the item had no event before the batch (not rankable)
    batch_index: torch.Tensor
    test_users: list[str]
    test_types: list[str]
    test_ts: list[int]
    own_item_kind: torch.Tensor | None = None  # repeats.py: the item among the user's own items before the batch
    recommended: set[int] = field(default_factory=set)
    catalogue_size: int = 0
    diversity: list[float] = field(default_factory=list)
    fit_s: float = 0.0
    score_s: float = 0.0
    observe_s: float = 0.0
    peak_rss_mib: float = math.nan
    rss_before_mib: float = math.nan
    n_test: int = 0


def run_stream(
    model: Recommender,
    train: InteractionBatch,
    validation: InteractionBatch,
    test: InteractionBatch,
    batch_size: int = 200,
    user_chunk: int = 256,
    progress: bool = True,
    diversity_dim: int = 64,
    seed: int = 0,
    fit: bool = True,
    on_score: Callable | None = None,
    prefitted: bool = False,
    on_lists: Callable | None = None,
) -> StreamResult:
    """Run the protocol for one model. `on_score(batch_index, users)` is a test hook called before each
    score call; `on_lists(top, catalogue)` gets each chunk's top-20 lists (catalogue indices). `prefitted`: the
    model is already fitted and has observed the validation part (a copy of a fitted model, one per diversity
    setting: evaluation/tradeoff.py), so neither happens here. The model ranks by `ranking_scores`, the
    contract method serving's top_k uses too (with its diversity setting)."""
    from tqdm import tqdm

    gc.collect()
    reset_peak_rss()
    rss_before = current_rss_mib()
    started = time.perf_counter()
    if fit and not prefitted:
        model.fit(train, validation)
    if not prefitted and not (fit and model.observes_validation_in_fit):
        for part in batches(validation, batch_size):
            model.observe(part)
    fit_s = time.perf_counter() - started

    catalogue, known_users = IdMap(), set()
    catalogue.add(train.items)
    catalogue.add(validation.items)
    known_users.update(train.users)
    known_users.update(validation.users)
    history = InteractionBatch(train.users + validation.users, train.items + validation.items, [], [])
    vectors = item_vectors(history, catalogue, dim=diversity_dim, seed=seed)
    own_item_kind = repeats.own_item_kinds(history, test, batch_size)

    n = len(test)
    result = StreamResult(
        model.name,
        torch.full((n,), ranking.MISS, dtype=torch.long),
        torch.zeros(n, dtype=torch.long),
        torch.zeros(n, dtype=torch.bool),
        torch.zeros(n, dtype=torch.bool),
        torch.zeros(n, dtype=torch.long),
        list(test.users),
        list(test.types),
        list(test.ts),
        own_item_kind,
        n_test=n,
    )
    ranker = _TestRanker(model, result, catalogue, vectors, user_chunk, on_score, on_lists)
    bar = tqdm(total=n, desc=f"{model.name} test", unit="ev", disable=not progress, leave=False, mininterval=1.0)
    observe_s = 0.0

    def observe(batch: InteractionBatch) -> None:
        nonlocal observe_s
        t0 = time.perf_counter()
        model.observe(batch)
        observe_s += time.perf_counter() - t0
        bar.update(len(batch))

    rank_then_observe(test, batch_size, catalogue, known_users, ranker.rank, observe)
    bar.close()
    result.catalogue_size = len(catalogue)
    result.fit_s, result.score_s, result.observe_s = fit_s, ranker.score_s, observe_s
    result.peak_rss_mib, result.rss_before_mib = peak_rss_mib(), rss_before
    return result


class _TestRanker:
    """Ranks each test batch for `run_stream` and records its figures into `result`: the model's scores are
    mapped to the harness's catalogue (an item the model does not know scores -inf), users in chunks of
    `user_chunk` so one score matrix stays bounded."""

    def __init__(
        self,
        model: Recommender,
        result: StreamResult,
        catalogue: IdMap,
        vectors: torch.Tensor,
        user_chunk: int,
        on_score: Callable | None,
        on_lists: Callable | None = None,
    ) -> None:
        self.model, self.result, self.catalogue, self.vectors = model, result, catalogue, vectors
        self.user_chunk, self.on_score, self.on_lists = user_chunk, on_score, on_lists
        self.columns = torch.zeros(0, dtype=torch.long)  # model column of each catalogue item (-1: unknown to it)
        self.score_s = 0.0

    def rank(self, batch: RankedBatch) -> None:
        result = self.result
        result.new_item[batch.start : batch.stop] = batch.targets < 0
        result.new_user[batch.start : batch.stop] = batch.new_user
        result.batch_index[batch.start : batch.stop] = batch.index
        self._map_new_catalogue_items(batch.catalogue_size)
        for chunk_start in range(0, len(batch.users), self.user_chunk):
            self._rank_chunk(batch, chunk_start)

    def _map_new_catalogue_items(self, n_catalogue: int) -> None:
        if self.columns.shape[0] < n_catalogue:
            fresh = self.model.items.lookup(self.catalogue.ids[self.columns.shape[0] : n_catalogue])
            self.columns = torch.cat([self.columns, torch.tensor(fresh, dtype=torch.long)])

    def _rank_chunk(self, batch: RankedBatch, chunk_start: int) -> None:
        model, result, n_catalogue = self.model, self.result, batch.catalogue_size
        chunk = batch.users[chunk_start : chunk_start + self.user_chunk]
        if self.on_score is not None:
            self.on_score(batch.index, chunk)
        t0 = time.perf_counter()
        # score(), re-ranked for diversity when the model's setting asks; the copy off a GPU is part of the cost
        raw = model.ranking_scores(chunk).detach().float().cpu()
        self.score_s += time.perf_counter() - t0
        if raw.shape != (len(chunk), len(model.items)):
            raise ValueError(
                f"{model.name}.score returned {tuple(raw.shape)}, expected ({len(chunk)}, {len(model.items)})"
            )
        raw = torch.nan_to_num(raw, nan=-math.inf)
        padded = torch.cat([raw, torch.full((len(chunk), 1), -math.inf)], dim=1)
        scores = padded[:, torch.where(self.columns < 0, raw.shape[1], self.columns)]  # unknown to the model: -inf
        # the events of this chunk's users
        in_chunk = (batch.rows >= chunk_start) & (batch.rows < chunk_start + len(chunk))
        positions = in_chunk.nonzero().view(-1)
        g, e = ranking.rank_counts(scores[batch.rows[positions] - chunk_start], batch.targets[positions])
        result.greater[batch.start + positions] = g
        result.equal[batch.start + positions] = e
        if n_catalogue:
            top = torch.topk(scores, min(TOP_K, n_catalogue), dim=1).indices
            result.recommended.update(top.view(-1).tolist())
            if self.on_lists is not None:
                self.on_lists(top, self.catalogue)
            if self.vectors.shape[0] < n_catalogue:  # items first seen in the test have no vector: a zero row
                self.vectors = torch.cat(
                    [self.vectors, torch.zeros(n_catalogue - self.vectors.shape[0], self.vectors.shape[1])]
                )
            ild = intra_list_diversity(top, self.vectors)
            result.diversity.extend(v for v in ild.tolist() if not math.isnan(v))


def _mask_summary(result: StreamResult, mask: torch.Tensor) -> dict:
    return ranking.summarise(result.greater[mask], result.equal[mask])


def summarise_result(result: StreamResult) -> dict:
    """Every figure of one model: overall, breakdowns, lists, cost."""
    all_events = torch.ones(result.n_test, dtype=torch.bool)
    overall = _mask_summary(result, all_events)
    hits10 = ranking.recall_at_k(result.greater, result.equal, 10)
    overall["user_hit_rate@10"] = ranking.user_hit_rate(result.test_users, hits10)
    names = sorted(set(result.test_types))
    codes = torch.tensor([names.index(t) for t in result.test_types], dtype=torch.long)
    by_type = {t: _mask_summary(result, codes == k) for k, t in enumerate(names)}
    model_s = result.score_s + result.observe_s
    per_batch = []
    n_batches = int(result.batch_index.max()) + 1 if result.n_test else 0
    group = max(1, math.ceil(n_batches / MAX_TIME_POINTS))  # consecutive batches per point (per event: many)
    for g in range(math.ceil(n_batches / group)):
        mask = (result.batch_index // group) == g
        first = int(mask.nonzero()[0])
        per_batch.append(
            {"ts": result.test_ts[first], "mrr": ranking.summarise(result.greater[mask], result.equal[mask])["mrr"]}
        )
    return {
        "overall": overall,
        "known_items_only": _mask_summary(result, ~result.new_item),
        "by_type": by_type,
        "by_user": {
            "new": _mask_summary(result, result.new_user),
            "returning": _mask_summary(result, ~result.new_user),
        },
        "by_item": {"new": _mask_summary(result, result.new_item), "known": _mask_summary(result, ~result.new_item)},
        "by_own_item": _own_item_summaries(result),
        "lists": {
            "k": TOP_K,
            "catalogue_coverage@20": ranking.catalogue_coverage(result.recommended, result.catalogue_size),
            "intra_list_diversity@20": (sum(result.diversity) / len(result.diversity)) if result.diversity else None,
        },
        "cost": {
            "fit_s": round(result.fit_s, 3),
            "score_s": round(result.score_s, 3),
            "observe_s": round(result.observe_s, 3),
            "s_per_1000_test_events": round(1000.0 * model_s / result.n_test, 4) if result.n_test else None,
            "peak_rss_mib": round(result.peak_rss_mib, 1),
            "rss_before_mib": round(result.rss_before_mib, 1),
        },
        "mrr_by_batch": per_batch,
    }


def _own_item_summaries(result: StreamResult) -> dict:
    """Returning users' events by where the item stands among the user's own items (repeats.py)."""
    if result.own_item_kind is None:
        return {}
    return {name: _mask_summary(result, result.own_item_kind == kind) for kind, name in repeats.KINDS.items()}


def stream_of(dataset) -> InteractionBatch:
    """The columnar events of a streamrec Dataset as one InteractionBatch."""
    return InteractionBatch(list(dataset.users), list(dataset.items), list(dataset.types), list(dataset.ts))


def cpu_threads() -> int:
    return torch.get_num_threads() or os.cpu_count() or 1
