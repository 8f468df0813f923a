"""Whether a user's already-seen items go below every unseen one: a choice SASRec and LightGCN make on validation
(each validation pass ranks both ways), since a sequence or graph model that is not told what a user saw keeps
ranking it high, and the data sets differ in how often users return to an item."""

from __future__ import annotations

from typing import Sequence

import torch

from ..contract import Recommender
from ..ranking import rank_counts, reciprocal_rank


def demote_seen(model: Recommender, scores: torch.Tensor, users: Sequence[str]) -> torch.Tensor:
    """Moves each user's already-seen items below every unseen one, keeping their order among themselves (in
    place; returns `scores`)."""
    rows, columns = model.history.excluded(torch.tensor(model.users.lookup(users), dtype=torch.long), "seen")
    span = scores.max(dim=1).values - scores.min(dim=1).values + 1.0
    scores[rows, columns] -= span[rows]
    return scores


def selection(record: dict, loss: float) -> tuple[float, bool]:
    """(an epoch's early-stopping score, whether seen items are demoted): the better of the two validation
    rankings, or minus the training loss when there is no validation part."""
    if "validation_mrr" not in record:
        return -loss, False
    demoted = record["validation_mrr_seen_demoted"] > record["validation_mrr"]
    return max(record["validation_mrr"], record["validation_mrr_seen_demoted"]), demoted


def reciprocal_rank_sum(scores: torch.Tensor, targets: torch.Tensor) -> float:
    return float(reciprocal_rank(*rank_counts(scores, targets)).sum())
