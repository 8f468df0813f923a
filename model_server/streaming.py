"""The one chronological split and the one streaming ranking loop, shared by training, every baseline and the
evaluation harness (a model may use them without importing the evaluation package, which imports the models).

The protocol (the TGB / TGN convention):
- events in time order are split by position: the first 70 % train, the next 15 % validation, the last 15 %
  test (`split_stream`; positions are rounded, `chronological_split`);
- a part is streamed in batches of `batch_size` events (`rank_then_observe`): every event of a batch is
  ranked from the state before its batch (nothing of the batch has been observed), then the whole batch is
  observed;
- the candidates are the full catalogue of items seen so far (in events before the batch), in order of first
  appearance; no negatives are sampled. An event whose item has never been seen cannot be ranked: its target
  is -1, a miss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch

from .contract import InteractionBatch
from .ids import IdMap

SPLIT = (0.70, 0.15, 0.15)


def chronological_split(n_events: int, ratios: Sequence[float] = SPLIT) -> tuple[int, int]:
    """(train_end, validation_end) positions of a time-ordered stream of n_events."""
    if abs(sum(ratios) - 1.0) > 1e-9 or len(ratios) != 3:
        raise ValueError(f"split ratios must be three numbers summing to 1, got {ratios}")
    train_end = int(round(n_events * ratios[0]))
    validation_end = int(round(n_events * (ratios[0] + ratios[1])))
    return train_end, validation_end


def smallest_splittable(ratios: Sequence[float] = SPLIT) -> int:
    """The fewest events whose chronological split leaves at least one event in each of the three parts."""
    if min(ratios) <= 0:
        raise ValueError(f"every split ratio must be positive, got {ratios}")
    n_events = 3
    while True:
        train_end, validation_end = chronological_split(n_events, ratios)
        if 0 < train_end < validation_end < n_events:
            return n_events
        n_events += 1


def split_stream(stream: InteractionBatch, ratios: Sequence[float] = SPLIT):
    """(train, validation, test) InteractionBatches."""
    if any(b < a for a, b in zip(stream.ts, stream.ts[1:])):
        raise ValueError("events must be in time order")
    train_end, validation_end = chronological_split(len(stream), ratios)
    return (
        stream.slice(0, train_end),
        stream.slice(train_end, validation_end),
        stream.slice(validation_end, len(stream)),
    )


def batches(stream: InteractionBatch, batch_size: int) -> Iterator[InteractionBatch]:
    for start in range(0, len(stream), batch_size):
        yield stream.slice(start, start + batch_size)


@dataclass(frozen=True)
class RankedBatch:
    """One batch as the loop hands it to `rank`, before the batch is observed."""

    index: int  # batch number in the stream
    start: int  # position of the batch's first event in the stream
    stop: int  # position after its last event
    events: InteractionBatch
    users: list[str]  # the batch's distinct users, in order of first appearance
    rows: torch.Tensor  # [len(events)] each event's row among `users`
    targets: torch.Tensor  # [len(events)] each event's item column in the catalogue; -1: never seen, a miss
    new_user: torch.Tensor  # [len(events)] bool: the event's user had no event before the batch
    catalogue_size: int  # items in the catalogue the batch is ranked against


def rank_then_observe(
    stream: InteractionBatch,
    batch_size: int,
    catalogue: IdMap,
    known_users: set,
    rank: Callable[[RankedBatch], None],
    observe: Callable[[InteractionBatch], None],
) -> None:
    """Streams `stream` under the protocol: for each batch of `batch_size` events, `rank(RankedBatch)` while
    the state is that of every event before the batch, then `observe(batch)`, then the batch's items join
    `catalogue` and its users `known_users` (both are advanced in place).

    `catalogue` holds the items seen so far in order of first appearance, so a target is a column of a
    full-catalogue ranking; an item not in it cannot be ranked (target -1, a miss). A model may pass its own
    item map when its `observe` registers each batch's items (then advancing it adds nothing) and its score
    columns follow that map."""
    for index, start in enumerate(range(0, len(stream), batch_size)):
        events = stream.slice(start, start + batch_size)
        users = list(dict.fromkeys(events.users))
        row_of = {user: row for row, user in enumerate(users)}
        rank(
            RankedBatch(
                index=index,
                start=start,
                stop=start + len(events),
                events=events,
                users=users,
                rows=torch.tensor([row_of[user] for user in events.users], dtype=torch.long),
                targets=torch.tensor(catalogue.lookup(events.items), dtype=torch.long),
                new_user=torch.tensor([user not in known_users for user in events.users], dtype=torch.bool),
                catalogue_size=len(catalogue),
            )
        )
        observe(events)
        catalogue.add(events.items)
        known_users.update(events.users)
