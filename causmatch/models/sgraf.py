"""SGRAF's similarity heads (Diao et al., "Similarity Reasoning and Filtration for Image-Text Matching", AAAI 2021).

On top of SCAN's t2i attention ``α [..., W, R]`` (the same maps as :mod:`causmatch.models.attention`, so every
intervention applies unchanged), a pair's score is built from similarity *vectors* instead of pooled cosines:

1. the attended context of word ``w``: ``a_w = l2norm(Σ_r α_wr v_r)``;
2. its local similarity vector ``s_w = l2norm(W_loc (a_w − e_w)²)`` (``sim_dim`` entries, squares element-wise);
3. the global one ``s_0 = l2norm(W_glo (v̄ − ē)²)`` between the self-attended image and caption vectors
   (``VisualSA`` / ``TextSA``: a softmax over the regions / words of ``tanh(BN(L(x))) ∘ tanh(BN(L(mean)))``);
4. the nodes ``[s_0, s_1 .. s_W]`` go to
   * ``sgr``: ``sgr_step`` graph-reasoning steps ``S ← ReLU(W_g softmax(Q(S) K(S)ᵀ) S)``; the vector is node 0;
   * ``saf``: attention filtration ``f = l1norm(sigmoid(BN(w·s_n + b)))`` over the nodes, vector ``l2norm(Σ f_n s_n)``;
5. the score ``sigmoid(w_eval · vector + b)``, in (0, 1).

Padded words are not nodes (SGRAF slices each caption to its length; here a mask does it). **An attention row
left all zero by an intervention** (a masked word, or a row the draw emptied) **removes that word's node**, as
in the SCAN head where such a word drops out of the pooling: the graph or the filtration then runs over the
remaining nodes, and the global node is always there (a pair with no word left scores from ``s_0`` alone).

The submodules carry the official ``EncoderSimilarity``'s names (``v_global_w``, ``t_global_w``,
``sim_tranloc_w``, ``sim_tranglo_w``, ``sim_eval_w``, ``SAF_module`` / ``SGR_module`` and their inner
``embedding_local``, ``embedding_global``, ``embedding_common``, ``attn_sim_w``, ``bn``, ``graph_query_w``,
``graph_key_w``, ``sim_graph_w``), so an official ``sim_enc`` state dict loads with ``load_state_dict``.

``VisualSA``'s first batch norm has one channel per region *slot* (``num_region``, SGRAF: 36): images with
fewer regions are padded to ``num_region`` slots (the padded slots get no weight in any softmax or mean);
images with more regions are refused with a one-line :class:`~causmatch.errors.DataError`. In training mode the
filtration's batch norm takes its statistics over the valid nodes of all pairs of the batch at once (SGRAF
takes them per caption against all images of the batch); in evaluation mode both use the running statistics,
so scores do not depend on the batching.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from causmatch.errors import ConfigError, DataError

EPS = 1e-8  # SGRAF's l1norm / l2norm: x / (|x| + eps)
DROPOUT = 0.4  # SGRAF's dropout in the self-attention blocks
# Bytes one (image, caption) pair takes per word while a block is scored, in float32 units of D (context and
# its squared difference), S (local vector, its norm, the reasoning step's query/key/output) and R (the map).
_PAIR_WORD_UNITS = (2, 6, 2)
# The memory budget of one block of sharded_similarity on an SGRAF head (its shard sizes are cut to fit it);
# on the CPU a smaller one (blocks whose context vectors stay nearer the caches were faster: bench_sgraf).
BLOCK_BUDGET_BYTES = 256 * 2**20
CPU_BLOCK_BUDGET_BYTES = 64 * 2**20


def block_budget(device: torch.device | str) -> int:
    """The block budget in bytes on ``device``: ``BLOCK_BUDGET_BYTES``, at most ``CPU_BLOCK_BUDGET_BYTES`` on a CPU."""
    cpu = torch.device(device).type == "cpu"
    return min(BLOCK_BUDGET_BYTES, CPU_BLOCK_BUDGET_BYTES) if cpu else BLOCK_BUDGET_BYTES


def l1norm(x: torch.Tensor, dim: int) -> torch.Tensor:
    """SGRAF's ``l1norm``: ``x / (Σ|x| + eps)`` along ``dim``."""
    return x / (x.abs().sum(dim, keepdim=True) + EPS)


def l2norm(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """SGRAF's ``l2norm``: ``x / (|x| + eps)`` along ``dim`` (a zero row stays 0 with a finite gradient)."""
    tiny = max(EPS * EPS, torch.finfo(x.dtype).tiny)
    return x / (x.pow(2).sum(dim, keepdim=True).clamp_min(tiny).sqrt() + EPS)


def _xavier(module: nn.Module) -> None:
    """SGRAF's init: Linear ~ U(±sqrt(6 / (in + out))), bias 0; batch norms weight 1, bias 0."""
    for m in module.modules() if not isinstance(module, nn.Linear) else [module]:
        if isinstance(m, nn.Linear):
            r = math.sqrt(6.0) / math.sqrt(m.in_features + m.out_features)
            nn.init.uniform_(m.weight, -r, r)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _masked_softmax(x: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax of ``x`` over ``dim`` where ``mask``; exactly 0 elsewhere (an all-masked slice gives 0s)."""
    x = x.masked_fill(~mask, torch.finfo(x.dtype).min)
    return torch.softmax(x, dim=dim) * mask


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x [B, N, D]`` over the valid ``N`` (``mask [B, N]``) → ``[B, D]``."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1)


class VisualSA(nn.Module):
    """The self-attended global image ``[I, D]`` from regions ``[I, R, D]`` (SGRAF's ``VisualSA``)."""

    def __init__(self, embed_dim: int, dropout_rate: float, num_region: int):
        super().__init__()
        self.num_region = num_region
        self.embedding_local = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.BatchNorm1d(num_region),
                                             nn.Tanh(), nn.Dropout(dropout_rate))
        self.embedding_global = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.BatchNorm1d(embed_dim),
                                              nn.Tanh(), nn.Dropout(dropout_rate))
        self.embedding_common = nn.Sequential(nn.Linear(embed_dim, 1))
        _xavier(self)

    def forward(self, local: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        I, R, D = local.shape
        if R > self.num_region:
            raise DataError(f"the images have {R} region slots but this SGRAF model's visual self-attention has "
                            f"{self.num_region} (model.num_region) — give at most {self.num_region} regions per "
                            f"image, or train with model.num_region={R}")
        if R < self.num_region:  # pad to the batch norm's slots; padded slots get no weight below
            local = torch.cat([local, local.new_zeros(I, self.num_region - R, D)], 1)
            mask = torch.cat([mask, mask.new_zeros(I, self.num_region - R)], 1)
        l_emb = self.embedding_local(local)  # [I, NR, D] (the batch norm's channels are the region slots)
        g_emb = self.embedding_global(_masked_mean(local, mask))  # [I, D]
        weights = self.embedding_common(l_emb * g_emb.unsqueeze(1)).squeeze(-1)  # [I, NR]
        weights = _masked_softmax(weights, mask, 1)
        return l2norm((weights.unsqueeze(-1) * local).sum(1))  # [I, D]


class TextSA(nn.Module):
    """The self-attended global caption ``[C, D]`` from words ``[C, W, D]`` (SGRAF's ``TextSA``)."""

    def __init__(self, embed_dim: int, dropout_rate: float):
        super().__init__()
        self.embedding_local = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.Tanh(), nn.Dropout(dropout_rate))
        self.embedding_global = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.Tanh(), nn.Dropout(dropout_rate))
        self.embedding_common = nn.Sequential(nn.Linear(embed_dim, 1))
        _xavier(self)

    def forward(self, local: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        l_emb = self.embedding_local(local)  # [C, W, D]
        g_emb = self.embedding_global(_masked_mean(local, mask))  # [C, D]
        weights = _masked_softmax(self.embedding_common(l_emb * g_emb.unsqueeze(1)).squeeze(-1), mask, 1)
        return l2norm((weights.unsqueeze(-1) * local).sum(1))  # [C, D]


class GraphReasoning(nn.Module):
    """One reasoning step over the similarity graph ``[N, L+1, S]`` (nodes where ``mask [N, L+1]``)."""

    def __init__(self, sim_dim: int):
        super().__init__()
        self.graph_query_w = nn.Linear(sim_dim, sim_dim)
        self.graph_key_w = nn.Linear(sim_dim, sim_dim)
        self.sim_graph_w = nn.Linear(sim_dim, sim_dim)
        self.relu = nn.ReLU()
        _xavier(self)

    def forward(self, sim_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k = self.graph_query_w(sim_emb), self.graph_key_w(sim_emb)  # [N, L+1, S]
        edge = _masked_softmax(q @ k.transpose(1, 2), mask.unsqueeze(1), -1)  # [N, L+1, L+1] over valid nodes
        return self.relu(self.sim_graph_w(edge @ sim_emb))


class AttentionFiltration(nn.Module):
    """Gate-weighted aggregation of the nodes ``[N, L+1, S]`` → ``(vector [N, S], weights [N, L+1])``."""

    def __init__(self, sim_dim: int):
        super().__init__()
        self.attn_sim_w = nn.Linear(sim_dim, 1)
        self.bn = nn.BatchNorm1d(1)
        _xavier(self)

    def forward(self, sim_emb: torch.Tensor, mask: torch.Tensor, edit=None):
        """``edit(weights, mask)``: an intervention on the weights (``filtration:KIND``), applied before the sum."""
        x = self.attn_sim_w(sim_emb).squeeze(-1)  # [N, L+1]
        # The batch norm sees only the valid nodes (its training statistics must not count padding).
        normed = self.bn(x[mask].unsqueeze(-1)).squeeze(-1)  # [M]
        gate = x.new_zeros(x.shape).masked_scatter(mask, torch.sigmoid(normed).to(x.dtype))  # [N, L+1]; 0 off nodes
        weights = l1norm(gate, -1)
        if edit is not None:
            weights = edit(weights, mask)
        return l2norm((weights.unsqueeze(-1) * sim_emb).sum(1)), weights


class EncoderSimilarity(nn.Module):
    """SGRAF's similarity encoder (``module_name`` ``"SGR"`` or ``"SAF"``), its parameters named as the official.

    :meth:`global_images` / :meth:`global_captions` give the self-attended globals; :meth:`score` the pair
    scores of given t2i maps. The attention itself is the matcher's (:mod:`causmatch.models.attention`).
    """

    def __init__(self, embed_size: int, sim_dim: int, module_name: str, sgr_step: int = 3, num_region: int = 36):
        super().__init__()
        if module_name not in ("SGR", "SAF"):
            raise ConfigError(f"module_name={module_name!r} is not valid — choose SGR or SAF")
        self.module_name = module_name
        self.v_global_w = VisualSA(embed_size, DROPOUT, num_region)
        self.t_global_w = TextSA(embed_size, DROPOUT)
        self.sim_tranloc_w = nn.Linear(embed_size, sim_dim)
        self.sim_tranglo_w = nn.Linear(embed_size, sim_dim)
        self.sim_eval_w = nn.Linear(sim_dim, 1)
        self.sigmoid = nn.Sigmoid()
        if module_name == "SGR":
            self.SGR_module = nn.ModuleList([GraphReasoning(sim_dim) for _ in range(sgr_step)])
        else:
            self.SAF_module = AttentionFiltration(sim_dim)
        for lin in (self.sim_tranloc_w, self.sim_tranglo_w, self.sim_eval_w):
            _xavier(lin)

    def global_images(self, regions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[I, D]`` self-attended image vectors from regions ``[I, R, D]``, mask ``[I, R]``."""
        return self.v_global_w(regions, mask)

    def global_captions(self, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[C, D]`` self-attended caption vectors from words ``[C, W, D]``, mask ``[C, W]``."""
        return self.t_global_w(words, mask)

    def score(self, alpha: torch.Tensor, words: torch.Tensor, regions: torch.Tensor, node_mask: torch.Tensor,
              img_glo: torch.Tensor, cap_glo: torch.Tensor, *, edit_filtration=None):
        """Scores of given t2i maps → ``(score [...], filtration [..., W+1] | None)``.

        Two layouts: all pairs (``alpha [I, C, W, R]``, words ``[C, W, D]``, regions ``[I, R, D]``, globals
        ``[I, D]`` / ``[C, D]``, ``node_mask [I, C, W]``) or aligned pairs (``alpha [N, W, R]``, words
        ``[N, W, D]``, regions ``[N, R, D]``, globals ``[N, D]``, ``node_mask [N, W]``). ``node_mask``: the word
        nodes that take part (valid words whose attention row is not empty); only their local vectors are
        computed (padding costs nothing). ``filtration``: SAF's node weights (node 0 the global one), None for SGR.
        """
        S = self.sim_eval_w.in_features  # sim_dim
        if alpha.dim() == 4:  # all pairs: the words that are a node in some pair, against each image in one GEMM
            I, C, W, R = alpha.shape
            cidx, widx = node_mask.any(0).nonzero(as_tuple=True)  # [Nv] each
            context = torch.bmm(alpha[:, cidx, widx], regions)  # [I, Nv, D]
            loc = l2norm(self.sim_tranloc_w((l2norm(context) - words[cidx, widx]).pow(2)))  # [I, Nv, S]
            sim_loc = loc.new_zeros(C, W, I, S).index_put((cidx, widx), loc.transpose(0, 1)).permute(2, 0, 1, 3)
            glo = (img_glo.unsqueeze(1) - cap_glo.unsqueeze(0)).pow(2)  # [I, C, D]
        else:  # aligned pairs
            N, W, R = alpha.shape
            nidx, widx = node_mask.nonzero(as_tuple=True)  # [Nv] each
            context = torch.bmm(alpha, regions)[nidx, widx]  # [Nv, D]
            loc = l2norm(self.sim_tranloc_w((l2norm(context) - words[nidx, widx]).pow(2)))  # [Nv, S]
            sim_loc = loc.new_zeros(N, W, S).index_put((nidx, widx), loc)  # [N, W, S]
            glo = (img_glo - cap_glo).pow(2)  # [N, D]
        lead = alpha.shape[:-2]
        sim_glo = l2norm(self.sim_tranglo_w(glo))  # [..., S]
        nodes = torch.cat([sim_glo.unsqueeze(-2), sim_loc], -2)  # [..., W+1, S]
        mask = torch.cat([node_mask.new_ones(*lead, 1), node_mask], -1)  # [..., W+1]
        nodes, mask = nodes.reshape(-1, *nodes.shape[-2:]), mask.reshape(-1, mask.shape[-1])
        filtration = None
        if self.module_name == "SGR":
            for step in self.SGR_module:
                nodes = step(nodes, mask)
            vec = nodes[:, 0]  # [N, S]
        else:
            edit = None if edit_filtration is None else (  # the lead layout, so pair ids broadcast
                lambda w, m: edit_filtration(w.view(*lead, -1), m.view(*lead, -1)).reshape(w.shape))
            vec, filtration = self.SAF_module(nodes, mask, edit)
            filtration = filtration.view(*lead, -1)
        score = self.sigmoid(self.sim_eval_w(vec)).view(lead)
        return score, filtration


def module_name(similarity: str) -> str:
    """The official ``module_name`` of a ``similarity`` setting (``"sgr"`` → ``"SGR"``)."""
    return similarity.upper()


def bytes_per_pair(words: int, regions: int, embed_size: int, sim_dim: int) -> int:
    """Peak float32 bytes one (image, caption) pair takes while a block is scored (the context vectors dominate)."""
    d, s, r = _PAIR_WORD_UNITS
    return 4 * max(1, words) * (d * embed_size + s * sim_dim + r * regions) + 4 * 2 * embed_size


def block_shape(n_images: int, n_captions: int, *, words: int, regions: int, embed_size: int, sim_dim: int,
                budget_bytes: int, max_images: int, max_captions: int) -> tuple[int, int]:
    """Shard sizes ``(images, captions)`` whose block stays within ``budget_bytes`` (at least 1 × 1).

    Captions are cut first (the image axis keeps the per-image GEMM wide), then images.
    """
    pairs = max(1, int(budget_bytes // bytes_per_pair(words, regions, embed_size, sim_dim)))
    si = max(1, min(max_images, n_images, pairs))
    sc = max(1, min(max_captions, n_captions, pairs // si))
    return si, sc
