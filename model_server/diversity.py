"""Serving-time diversity: maximal marginal relevance re-ranking of a score matrix.

MMR follows Carbonell & Goldstein, "The Use of MMR, Diversity-Based Reranking for Reordering Documents and
Producing Summaries" (SIGIR 1998): from a row's candidates, pick greedily the item that maximises

    (1 - λ) · relevance(item) - λ · max over the items already picked of similarity(item, picked)

Here the candidates are each row's top `depth` items by score, relevance is the row's scores min-max
normalised over those candidates (so λ weighs two quantities on the same [0, 1] scale), and similarity is the
cosine of item vectors, or of multi-hot category labels (two items of one category: 1), which makes λ a soft
cap per category. λ = 0 returns the scores untouched.

The result is a new score matrix in which the re-ranked candidates keep their new order above every other
item of the row, strictly decreasing; every other entry is unchanged, and an excluded item (-inf, or any
non-finite score) is never a candidate and keeps its score. Serving (Recommender.top_k) and the evaluation
harness (Recommender.ranking_scores) both go through `mmr_rerank`, so one function decides both.
"""

from __future__ import annotations

import torch

DEFAULT_DEPTH = 100  # candidates re-ranked per row: 5 x the default list length of 20


def check_strength(value) -> float:
    """λ as a float in [0, 1]; anything else raises ValueError saying so."""
    try:
        strength = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"diversity must be a number between 0 and 1, got {value!r}") from None
    if not 0.0 <= strength <= 1.0:  # also refuses nan
        raise ValueError(f"diversity must be between 0 and 1, got {value!r}")
    return strength


def _similarity_to(candidates: torch.Tensor, picked: torch.Tensor) -> torch.Tensor:
    """[R, d] similarity of each candidate to the row's picked item.

    candidates: float [R, d, dim] L2-normalised vectors (cosine), or long [R, d, L] label sets padded with -1
    (cosine of multi-hot sets: |A ∩ B| / sqrt(|A| |B|), 0 for an item without labels); picked: [R, dim] / [R, L].
    """
    if candidates.dtype.is_floating_point:
        return (candidates * picked[:, None, :]).sum(-1)
    present = candidates >= 0
    shared = ((candidates[:, :, :, None] == picked[:, None, None, :]) & present[:, :, :, None]).sum((-1, -2))
    sizes = present.sum(-1).float() * (picked >= 0).sum(-1, keepdim=True).float()
    return torch.where(sizes > 0, shared.float() / sizes.clamp(min=1.0).sqrt(), torch.zeros_like(sizes))


def _pairwise(candidates: torch.Tensor) -> torch.Tensor:
    """[R, d, d] similarity of every pair of a row's candidates (the same as _similarity_to): vectors in one
    batched product; label sets one label slot pair at a time (L x L steps of [R, d, d], never [R, d, d, L, L])."""
    if candidates.dtype.is_floating_point:
        return torch.bmm(candidates, candidates.transpose(1, 2))
    present = candidates >= 0
    shared = torch.zeros(candidates.shape[0], candidates.shape[1], candidates.shape[1], device=candidates.device)
    for a in range(candidates.shape[2]):
        for b in range(candidates.shape[2]):
            left, right = candidates[:, :, a], candidates[:, :, b]
            shared += (
                (left[:, :, None] == right[:, None, :]) & present[:, :, a, None] & present[:, None, :, b]
            ).float()
    sizes = present.sum(-1).float()
    sizes = sizes[:, :, None] * sizes[:, None, :]
    return torch.where(sizes > 0, shared / sizes.clamp(min=1.0).sqrt(), torch.zeros_like(shared))


@torch.no_grad()
def mmr_rerank(
    scores: torch.Tensor, vectors: torch.Tensor, strength: float, depth: int = DEFAULT_DEPTH
) -> torch.Tensor:
    """MMR re-ranking of every row of `scores` [R, N] over its top `depth` candidates.

    vectors: [N, dim] float item vectors (cosine similarity) or [N, L] long category labels per item (-1 pads),
    on any device; `strength` is λ in [0, 1]. Returns `scores` itself when λ is 0 (no cost), else a new tensor.
    Vectorised over rows; the only loop is over the `depth` positions.
    """
    strength = check_strength(strength)
    if strength == 0.0 or scores.numel() == 0:
        return scores
    if vectors.shape[0] < scores.shape[1]:
        raise ValueError(f"{vectors.shape[0]} item vectors for {scores.shape[1]} scored items")
    n_rows, n_items = scores.shape
    d = min(int(depth), n_items)
    if d < 2:
        return scores
    values, index = torch.topk(scores, d, dim=1)  # [R, d], best first
    # equal scores in item order: topk leaves the order of ties unspecified (it differs between devices), and
    # the greedy choice below breaks a tie by position, so a list would depend on where it was computed
    index, by_item = index.sort(dim=1)
    values, by_value = values.gather(1, by_item).sort(dim=1, descending=True, stable=True)
    index = index.gather(1, by_value)
    valid = torch.isfinite(values)
    # relevance: min-max over the row's valid candidates (all equal: all 1)
    low = torch.where(valid, values, torch.full_like(values, float("inf"))).min(1, keepdim=True).values
    high = torch.where(valid, values, torch.full_like(values, float("-inf"))).max(1, keepdim=True).values
    span = high - low
    relevance = torch.where(
        span > 0, (values - low) / torch.where(span > 0, span, torch.ones_like(span)), torch.ones_like(values)
    )
    relevance = torch.where(valid, relevance, torch.zeros_like(relevance)).float()

    candidates = vectors[index.to(vectors.device)].to(scores.device)  # [R, d, dim] or [R, d, L]
    if candidates.dtype.is_floating_point:
        candidates = torch.nn.functional.normalize(candidates.float(), dim=-1)
    pairwise = _pairwise(candidates)  # [R, d, d]
    rows = torch.arange(n_rows, device=scores.device)
    picked = ~valid  # never pick an excluded item
    max_similarity = torch.zeros(n_rows, d, device=scores.device)
    order = torch.zeros(n_rows, d, dtype=torch.long, device=scores.device)
    n_valid = valid.sum(1)
    for position in range(int(n_valid.max())):
        gain = (1.0 - strength) * relevance - strength * max_similarity
        gain = gain.masked_fill(picked, float("-inf"))
        choice = gain.argmax(1)  # ties: the better-scored candidate, then the lower item index
        order[:, position] = choice
        picked[rows, choice] = True
        max_similarity = torch.maximum(max_similarity, pairwise[rows, choice])

    # the re-ranked candidates: strictly decreasing values above their lowest score, which no other item of the
    # row exceeds (they are the row's top d), so they stay above every other item
    out = scores.clone()
    base = torch.where(n_valid > 0, low[:, 0], torch.zeros_like(low[:, 0]))
    step = base.abs().clamp(min=1.0) * 1e-3  # well above float32 rounding
    positions = torch.arange(d, device=scores.device)
    new_values = base[:, None] + step[:, None] * (n_valid[:, None] - positions[None, :]).to(base.dtype)
    placed = positions[None, :] < n_valid[:, None]  # rows' valid positions
    chosen_items = index.gather(1, order)
    out[rows[:, None].expand(-1, d)[placed], chosen_items[placed]] = new_values[placed].to(out.dtype)
    return out


def category_labels(categories: list[str | None]) -> list[tuple[str, ...]]:
    """An item record's `category` as a set of labels: REES46's 'electronics.smartphone' is one label,
    MovieLens' 'Action, Comedy' two; None or blank: none."""
    labels = []
    for text in categories:
        parts = [] if not text else [p.strip() for p in str(text).split(",")]
        labels.append(tuple(dict.fromkeys(p for p in parts if p)))
    return labels


def intra_list_diversity(top: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """Per row of item indices `top` [R, k] (-1 pads a short list): the mean 1 - similarity over the pairs of the
    list's items, with MMR's similarity (cosine of the vectors, normalised here: an item with a zero vector is at
    distance 1 from everything; or of label sets); float64 [R], nan where a list holds fewer than two items.
    The evaluation's ILD@20 and the diversity tests both read this one."""
    if top.numel() == 0:
        return torch.zeros(top.shape[0], dtype=torch.float64)
    valid = (top >= 0).cpu()
    candidates = vectors[top.clamp(min=0).to(vectors.device)].cpu()
    if candidates.dtype.is_floating_point:
        candidates = torch.nn.functional.normalize(candidates.float(), dim=-1) * valid[..., None]
    else:
        candidates = torch.where(valid[..., None], candidates, -1)  # a pad has no labels
    pairs = valid[:, :, None] & valid[:, None, :] & ~torch.eye(top.shape[1], dtype=torch.bool)[None]
    count = pairs.sum((1, 2)).double()
    distance = ((1.0 - _pairwise(candidates).double()) * pairs).sum((1, 2))
    return torch.where(count > 0, distance / count.clamp(min=1), torch.full_like(count, float("nan")))
