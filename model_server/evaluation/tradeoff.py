"""The diversity trade-off of `streamrec eval --diversity 0,0.25,...`: each model is fitted once, then the test
part runs once per diversity setting (λ of model_server/diversity.py) on a copy of the fitted state, and each
run records, besides the usual figures, how many categories its top-20 lists span.

Category coverage needs the items' categories (REES46 category_code or category_id, MovieLens genres:
data.item_info); an item's `category` is a set of labels as diversity.category_labels reads it.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Callable, Sequence

import torch

from ..contract import InteractionBatch, Recommender
from ..diversity import category_labels
from ..ids import IdMap
from ..streaming import batches
from . import protocol

log = logging.getLogger(__name__)

FIGURES = (("mrr", "MRR"), ("ndcg@20", "NDCG@20"), ("recall@20", "R@20"))


def parse_strengths(text: str) -> list[float]:
    """'0,0.25,0.5' -> [0.0, 0.25, 0.5]: distinct numbers in [0, 1], in the order given."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(
            f"{text!r}: diversity settings are numbers between 0 and 1 separated by commas, e.g. 0,0.25,0.5,0.75"
        ) from None
    if not values or len(set(values)) != len(values) or not all(0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"{text!r}: give one or more distinct numbers between 0 and 1, e.g. 0,0.25,0.5,0.75")
    return values


class CategoryCoverage:
    """An `on_lists(top, catalogue)` hook of protocol.run_stream: per top-k list the number of distinct category
    labels of its items, and every label that appears in any list. Items without a category count for none."""

    def __init__(self, item_info: dict) -> None:
        ids = list(item_info)
        self.names = IdMap()
        self.by_item = {
            item: tuple(self.names.add(labels))
            for item, labels in zip(ids, category_labels([item_info[i].category for i in ids]))
            if labels
        }
        self.width = max([len(labels) for labels in self.by_item.values()] + [1])
        self.rows = torch.zeros(0, self.width, dtype=torch.long)  # catalogue index -> labels, -1 padded
        self.per_list: list[int] = []
        self.seen = torch.zeros(len(self.names), dtype=torch.bool)
        self.catalogue: IdMap | None = None
        self.rankable = 0  # catalogue items that could be in a list (those first seen in the last batch never are)

    @property
    def available(self) -> bool:
        return bool(self.by_item)

    def __call__(self, top: torch.Tensor, catalogue: IdMap) -> None:
        if not self.available or top.numel() == 0:
            return
        self.catalogue = catalogue
        self.rankable = max(self.rankable, len(catalogue))
        self._extend(len(catalogue))
        labels = self.rows[top].reshape(top.shape[0], -1)
        ordered = labels.sort(1).values
        distinct = (ordered[:, :1] >= 0).sum(1) + ((ordered[:, 1:] != ordered[:, :-1]) & (ordered[:, 1:] >= 0)).sum(1)
        self.per_list.extend(distinct.tolist())
        present = labels[labels >= 0]
        self.seen[present] = True

    def _extend(self, n: int) -> None:
        if self.rows.shape[0] >= n:
            return
        block = torch.full((n - self.rows.shape[0], self.width), -1, dtype=torch.long)
        for row, item in enumerate(self.catalogue.ids[self.rows.shape[0] : n]):
            labels = self.by_item.get(item, ())
            block[row, : len(labels)] = torch.tensor(labels, dtype=torch.long) if labels else block[row, :0]
        self.rows = torch.cat([self.rows, block])

    def summary(self) -> dict:
        """categories_per_list@20: mean distinct categories per list; category_coverage@20: share of the
        categories of the rankable catalogue's items (every item seen before the last batch) in any list."""
        if not self.available or self.catalogue is None:
            return {"categories_per_list@20": None, "category_coverage@20": None, "categories": 0}
        rankable = self.rows[: self.rankable]
        in_catalogue = rankable[rankable >= 0].unique()
        return {
            "categories_per_list@20": sum(self.per_list) / len(self.per_list) if self.per_list else None,
            "category_coverage@20": (float(self.seen[in_catalogue].sum()) / len(in_catalogue))
            if len(in_catalogue)
            else None,
            "categories": int(len(in_catalogue)),
        }


def give_categories(model: Recommender, item_info: dict) -> None:
    """The items' categories, as the items topic would bring them in serving, without registering any item
    (the harness keeps the catalogue): what the diversity control falls back to without item vectors."""
    model.item_categories.set([info for info in item_info.values() if info is not None])


def fit_once(model: Recommender, train: InteractionBatch, validation: InteractionBatch, batch_size: int) -> float:
    """What run_stream does before the test part: fit, then observe the validation part unless fit did.
    Returns the seconds it took."""
    started = time.perf_counter()
    model.fit(train, validation)
    if not model.observes_validation_in_fit:
        for part in batches(validation, batch_size):
            model.observe(part)
    return time.perf_counter() - started


def fitted_copy(model: Recommender, rebuild: Callable[[], Recommender]) -> Recommender:
    """A model in the fitted state of `model`: a deep copy, or, for a model that cannot be copied, `rebuild()`
    (a fresh model fitted again)."""
    try:
        return copy.deepcopy(model)
    except Exception as exc:  # a state deepcopy cannot copy (a lock, a handle): fit a fresh one
        log.warning("%s cannot be copied (%s): fitted again for this diversity setting", model.name, exc)
        return rebuild()


def setting_summary(strength: float, summary: dict, coverage: CategoryCoverage) -> dict:
    """One row of a model's "diversity" section of report.json."""
    overall, lists = summary["overall"], summary["lists"]
    return {
        "diversity": strength,
        **{key: overall[key] for key, _ in FIGURES},
        "intra_list_diversity@20": lists["intra_list_diversity@20"],
        "catalogue_coverage@20": lists["catalogue_coverage@20"],
        **coverage.summary(),
        "s_per_1000_test_events": summary["cost"]["s_per_1000_test_events"],
    }


def run_settings(
    model: Recommender,
    rebuild: Callable[[], Recommender],
    strengths: Sequence[float],
    train: InteractionBatch,
    validation: InteractionBatch,
    test: InteractionBatch,
    item_info: dict,
    **run_options,
) -> list[tuple[float, protocol.StreamResult, CategoryCoverage]]:
    """Fit `model` once, then run the test part once per strength on a copy of the fitted state."""
    batch_size = run_options.get("batch_size", 200)
    fit_s = fit_once(model, train, validation, batch_size)

    def refit() -> Recommender:
        fresh = rebuild()
        fit_once(fresh, train, validation, batch_size)
        return fresh

    runs = []
    for k, strength in enumerate(strengths):  # the fitted model itself runs last, copies before it
        subject = model if k == len(strengths) - 1 else fitted_copy(model, refit)
        subject.diversity = strength
        coverage = CategoryCoverage(item_info)
        outcome = protocol.run_stream(
            subject, train, validation, test, prefitted=True, on_lists=coverage, **run_options
        )
        outcome.fit_s = fit_s
        runs.append((strength, outcome, coverage))
        subject = None
    return runs
