"""A tiny SGRAF-shaped model written from the SGRAF paper (Diao et al., AAAI 2021), to check imported checkpoints.

Independent of ``causmatch.models``: plain torch, the formulas spelled out, the module names those of SGRAF's
state dicts (so ``state_dict()`` of these modules *is* an official checkpoint's ``model`` list):

- image encoder ``fc`` (+ l2norm unless ``no_imgnorm``); text encoder ``embed`` + ``cap_rnn`` (a GRU, the
  two directions averaged, + l2norm unless ``no_txtnorm``);
- ``sim_enc``: ``v_global_w`` / ``t_global_w`` (self-attended globals: ``embedding_local``, ``embedding_global``,
  ``embedding_common``; the visual one with a batch norm over the region axis), ``sim_tranloc_w``,
  ``sim_tranglo_w``, ``sim_eval_w`` and either ``SAF_module`` (``attn_sim_w``, ``bn``) or ``SGR_module``
  (``sgr_step`` × ``graph_query_w``, ``graph_key_w``, ``sim_graph_w``).

Scores follow SGRAF's evaluation: one caption at a time, sliced to its length, against every image, in eval
mode (batch norms use their running statistics, dropout off). Every step below is one line of the paper:

1. t2i attention: ``s = leaky_relu(V Wᵀ, 0.1)``, l2-normalised over the caption's words, ``α = softmax_r(9 s)``;
   the attended context ``a_w = Σ_r α_wr v_r``, l2-normalised;
2. local similarity vectors ``s_w = l2norm(W_loc (a_w − w)²)``, global ``s_g = l2norm(W_glo (v̄ − w̄)²)`` from the
   self-attended globals; nodes ``[s_g, s_1 … s_n]``;
3. SAF: ``β = l1norm(sigmoid(BN(w_att · s)))`` over the nodes, ``s = l2norm(Σ β s)``; SGR: ``sgr_step`` times
   ``s ← relu(W_g softmax(W_q s (W_k s)ᵀ) s)``, then node 0;
4. score ``sigmoid(w_eval · s)``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

EPS = 1e-8


def l2norm(x, dim=-1):
    return x / (x.pow(2).sum(dim, keepdim=True).sqrt() + EPS)


def l1norm(x, dim=-1):
    return x / (x.abs().sum(dim, keepdim=True) + EPS)


def _randomise_bn(bn: nn.BatchNorm1d) -> None:
    """Trained-looking statistics, so the checks see the batch norm's eval-mode formula at work."""
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.3, 0.3)
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
        bn.num_batches_tracked.fill_(1234)


class SgrafImageEncoder(nn.Module):
    def __init__(self, img_dim, embed_size, no_imgnorm=False):
        super().__init__()
        self.fc = nn.Linear(img_dim, embed_size)
        self.no_imgnorm = no_imgnorm

    def forward(self, x):  # [I,R,F] -> [I,R,D]
        v = self.fc(x)
        return v if self.no_imgnorm else l2norm(v)


class SgrafTextEncoder(nn.Module):
    def __init__(self, vocab_size, word_dim, embed_size, num_layers, bi_gru, no_txtnorm=False):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim)
        self.cap_rnn = nn.GRU(word_dim, embed_size, num_layers, batch_first=True, bidirectional=bi_gru)
        self.embed_size, self.bi, self.no_txtnorm = embed_size, bi_gru, no_txtnorm

    def forward(self, ids, lengths):  # ids [C,W] -> words [C,W,D]
        packed = pack_padded_sequence(self.embed(ids), lengths, batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.cap_rnn(packed)[0], batch_first=True)
        if self.bi:
            out = (out[..., :self.embed_size] + out[..., self.embed_size:]) / 2
        return out if self.no_txtnorm else l2norm(out)


class SelfAttendedGlobal(nn.Module):
    """``v_global_w`` (``num_region`` set: batch norms) or ``t_global_w`` (no batch norm)."""

    def __init__(self, dim, num_region=None):
        super().__init__()
        local = [nn.Linear(dim, dim)] + ([nn.BatchNorm1d(num_region)] if num_region else [])
        glob = [nn.Linear(dim, dim)] + ([nn.BatchNorm1d(dim)] if num_region else [])
        self.embedding_local = nn.Sequential(*local, nn.Tanh(), nn.Dropout(0.4))
        self.embedding_global = nn.Sequential(*glob, nn.Tanh(), nn.Dropout(0.4))
        self.embedding_common = nn.Sequential(nn.Linear(dim, 1))
        for m in self.modules():
            if isinstance(m, nn.BatchNorm1d):
                _randomise_bn(m)

    def forward(self, local):  # [B,N,D] -> [B,D]
        weights = torch.softmax(self.embedding_common(
            self.embedding_local(local) * self.embedding_global(local.mean(1)).unsqueeze(1)).squeeze(-1), dim=1)
        return l2norm((weights.unsqueeze(-1) * local).sum(1))


class GraphStep(nn.Module):
    def __init__(self, sim_dim):
        super().__init__()
        self.graph_query_w = nn.Linear(sim_dim, sim_dim)
        self.graph_key_w = nn.Linear(sim_dim, sim_dim)
        self.sim_graph_w = nn.Linear(sim_dim, sim_dim)

    def forward(self, nodes):  # [B,N,S]
        edges = torch.softmax(self.graph_query_w(nodes) @ self.graph_key_w(nodes).transpose(1, 2), dim=-1)
        return F.relu(self.sim_graph_w(edges @ nodes))


class Filtration(nn.Module):
    def __init__(self, sim_dim):
        super().__init__()
        self.attn_sim_w = nn.Linear(sim_dim, 1)
        self.bn = nn.BatchNorm1d(1)
        _randomise_bn(self.bn)

    def weights(self, nodes):  # [B,N,S] -> [B,N]
        return l1norm(torch.sigmoid(self.bn(self.attn_sim_w(nodes).transpose(1, 2))), dim=-1).squeeze(1)

    def forward(self, nodes):
        return l2norm((self.weights(nodes).unsqueeze(-1) * nodes).sum(1))


class SgrafSimilarity(nn.Module):
    def __init__(self, embed_size, sim_dim, module_name, sgr_step=3, num_region=36):
        super().__init__()
        self.module_name = module_name
        self.v_global_w = SelfAttendedGlobal(embed_size, num_region)
        self.t_global_w = SelfAttendedGlobal(embed_size)
        self.sim_tranloc_w = nn.Linear(embed_size, sim_dim)
        self.sim_tranglo_w = nn.Linear(embed_size, sim_dim)
        self.sim_eval_w = nn.Linear(sim_dim, 1)
        if module_name == "SGR":
            self.SGR_module = nn.ModuleList([GraphStep(sim_dim) for _ in range(sgr_step)])
        else:
            self.SAF_module = Filtration(sim_dim)

    def nodes(self, images, caption):
        """images [I,R,D], caption [n,D] (sliced to its length) -> similarity nodes [I, 1+n, S]."""
        n_img = images.shape[0]
        cap = caption.unsqueeze(0).expand(n_img, -1, -1)  # [I,n,D]
        s = F.leaky_relu(images @ cap.transpose(1, 2), 0.1)  # [I,R,n]
        s = l2norm(s, dim=2)  # over the caption's words
        attn = torch.softmax(9.0 * s.transpose(1, 2), dim=2)  # [I,n,R]
        context = l2norm(attn @ images)  # [I,n,D]
        local = l2norm(self.sim_tranloc_w((context - cap) ** 2))
        v_glo = self.v_global_w(images)  # [I,D]
        t_glo = self.t_global_w(caption.unsqueeze(0))  # [1,D]
        glob = l2norm(self.sim_tranglo_w((v_glo - t_glo) ** 2))  # [I,S]
        return torch.cat([glob.unsqueeze(1), local], 1)

    def forward(self, images, words, lengths):
        """images [I,R,D], words [C,W,D], lengths [C] -> scores [I,C] (and SAF weights per caption)."""
        cols, filtration = [], []
        for c in range(words.shape[0]):
            nodes = self.nodes(images, words[c, : lengths[c]])
            if self.module_name == "SGR":
                for step in self.SGR_module:
                    nodes = step(nodes)
                vec = nodes[:, 0]
            else:
                filtration.append(self.SAF_module.weights(nodes))  # [I, 1+n]
                vec = self.SAF_module(nodes)
            cols.append(torch.sigmoid(self.sim_eval_w(vec)).squeeze(-1))
        return torch.stack(cols, 1), filtration
