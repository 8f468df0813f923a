"""Learning on a chronological split, TGN-style: replay the training events in time-ordered batches; each
batch is scored from the state *before* it (no leakage), then folded into the buffer. The loss is a sampled
softmax of each true item against uniformly drawn catalogue items (a sampled version of the
full-catalogue ranking that is evaluated; see batch_loss on in-batch negatives). After each epoch the validation events are streamed the
same way and ranked against the whole catalogue; training stops early on validation MRR and keeps the best
weights."""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .graph_state import TemporalGraph
from .model import TemporalGAT


@dataclass
class TrainConfig:
    epochs: int = 5
    batch_size: int = 200
    lr: float = 1e-3
    negatives: int = 256
    in_batch_negatives: bool = False  # also use the other rows' true items as negatives (popularity-biased)
    patience: int = 1
    seed: int = 0
    progress: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Events:
    """Interactions as index tensors (user index, item index, type index, epoch ms), in time order."""
    users: torch.Tensor
    items: torch.Tensor
    types: torch.Tensor
    ts: torch.Tensor

    def __len__(self) -> int:
        return self.users.shape[0]

    def batches(self, size: int):
        for start in range(0, len(self), size):
            yield Events(self.users[start:start + size], self.items[start:start + size],
                         self.types[start:start + size], self.ts[start:start + size])


def batch_loss(model: TemporalGAT, graph: TemporalGraph, batch: Events, negatives: int,
               generator: torch.Generator, in_batch: bool = False) -> torch.Tensor:
    """Sampled softmax of each true item against `negatives` uniform catalogue draws. Without in_batch the
    other rows' true items are masked out of a row's softmax: in-batch negatives are drawn in proportion to
    popularity, which (uncorrected) teaches the score to under-rate popular items (the sampling bias that
    Yi et al., "Sampling-bias-corrected neural modeling", RecSys 2019, correct with log Q); uniform draws
    keep the sampled softmax an unbiased stand-in for the full-catalogue ranking that is evaluated."""
    device = graph.device
    user_nodes = graph.user_node[batch.users.to(device)]
    item_nodes = graph.item_node[batch.items.to(device)]
    drawn = graph.item_node[torch.randint(graph.num_items, (negatives,), generator=generator).to(device)]
    candidates = torch.unique(torch.cat([item_nodes, drawn]))
    nodes = torch.unique(torch.cat([user_nodes, candidates]))
    z = model.embed(graph, nodes)
    z_users = z[torch.searchsorted(nodes, user_nodes)]
    z_candidates = z[torch.searchsorted(nodes, candidates)]
    logits = model.score_candidates(graph, user_nodes, z_users, candidates, z_candidates)
    target = torch.searchsorted(candidates, item_nodes)
    if not in_batch:
        allowed = torch.zeros_like(logits, dtype=torch.bool)
        allowed[:, torch.searchsorted(candidates, drawn)] = True
        allowed[torch.arange(target.numel(), device=device), target] = True
        logits = logits.masked_fill(~allowed, float("-inf"))
    return F.cross_entropy(logits, target)


@torch.no_grad()
def evaluate_stream(model: TemporalGAT, graph: TemporalGraph, events: Events, batch_size: int,
                    progress: bool = False, desc: str = "validate") -> dict:
    """Streaming full-catalogue ranking (TGB-style): score each batch from the state before it, then fold it
    in. The rank of the true item counts ties as half (neither optimistic nor pessimistic)."""
    model.eval()
    device = graph.device
    item_nodes = graph.item_node
    reciprocal, hits10, n = 0.0, 0, 0
    for batch in tqdm(list(events.batches(batch_size)), desc=desc, disable=not progress, leave=False):
        user_nodes = graph.user_node[batch.users.to(device)]
        nodes = torch.unique(torch.cat([user_nodes, item_nodes]))
        z = model.embed(graph, nodes)
        scores = model.score_catalogue(graph, user_nodes, z[torch.searchsorted(nodes, user_nodes)],
                                       z[torch.searchsorted(nodes, item_nodes)])
        true = scores.gather(1, batch.items.to(device)[:, None])
        rank = 1 + (scores > true).sum(1) + 0.5 * ((scores == true).sum(1) - 1)
        reciprocal += float((1.0 / rank).sum())
        hits10 += int((rank <= 10).sum())
        n += len(batch)
        graph.insert(batch.users, batch.items, batch.types, batch.ts)
    return {"mrr": reciprocal / max(n, 1), "hits@10": hits10 / max(n, 1), "events": n}


def train(model: TemporalGAT, graph: TemporalGraph, history: Events, validation: Events | None,
          config: TrainConfig) -> dict:
    """Trains in place, leaves the best weights in `model` and the buffer at the end of history+validation."""
    generator = torch.Generator().manual_seed(config.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    best, best_state, since_best, epochs = -1.0, None, 0, []
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        graph.clear()
        model.train()
        total, steps = 0.0, 0
        bar = tqdm(list(history.batches(config.batch_size)), desc=f"epoch {epoch}", disable=not config.progress)
        for batch in bar:
            loss = batch_loss(model, graph, batch, config.negatives, generator, config.in_batch_negatives)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            graph.insert(batch.users, batch.items, batch.types, batch.ts)
            total, steps = total + float(loss.detach()), steps + 1
            if steps % 20 == 0:
                bar.set_postfix(loss=f"{total / steps:.4f}")
        record = {"epoch": epoch, "loss": total / max(steps, 1)}
        if validation is not None and len(validation):
            record["validation"] = evaluate_stream(model, graph, validation, config.batch_size, config.progress)
        record["seconds"] = round(time.perf_counter() - started, 2)
        epochs.append(record)
        if config.progress:
            tqdm.write(f"epoch {epoch}: {record}")
        metric = record.get("validation", {}).get("mrr", -record["loss"])
        if metric > best:
            best, best_state, since_best = metric, copy.deepcopy(model.state_dict()), 0
        else:
            since_best += 1
            if since_best > config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    best_epoch = max(epochs, key=lambda r: r.get("validation", {}).get("mrr", -r["loss"]))
    return {"epochs": epochs, "best_epoch": best_epoch["epoch"], "validation": best_epoch.get("validation")}
