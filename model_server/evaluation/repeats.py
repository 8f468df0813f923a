"""Where each test event's item stands among its user's own earlier items, as the harness sees them before the
event's batch: the user's newest item, an older one of theirs, or an item new to the user. A model-independent
breakdown (the same for every model of a run): on JODIE Wikipedia most events repeat the editor's newest page,
so that share bounds what ordering a user's own items by recency can score, and the events new to the user are
where anything beyond the user's own history has to earn its figure."""

from __future__ import annotations

import torch

from ..contract import InteractionBatch
from ..streaming import batches

NEWEST, OLDER, NEW_TO_USER, NEW_USER = 0, 1, 2, 3
KINDS = {NEWEST: "their newest item", OLDER: "an older item of theirs", NEW_TO_USER: "an item new to them"}


def own_item_kinds(history: InteractionBatch, test: InteractionBatch, batch_size: int) -> torch.Tensor:
    """[len(test)] one of NEWEST, OLDER, NEW_TO_USER, NEW_USER per test event, from the events before its batch
    (`history`: every event before the test part, in time order)."""
    newest: dict[str, str] = {}
    own: dict[str, set] = {}

    def observe(users, items) -> None:
        for user, item in zip(users, items):
            newest[user] = item
            own.setdefault(user, set()).add(item)

    observe(history.users, history.items)
    kinds = []
    for batch in batches(test, batch_size):
        for user, item in zip(batch.users, batch.items):
            if user not in newest:
                kinds.append(NEW_USER)
            else:
                kinds.append(NEWEST if newest[user] == item else OLDER if item in own[user] else NEW_TO_USER)
        observe(batch.users, batch.items)
    return torch.tensor(kinds, dtype=torch.long)
