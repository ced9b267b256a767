"""Ranking losses: VSE++'s hinge triplet loss and the CausMatch loss ``L_rank(S) + λ_eff · L_eff(E)``."""
from __future__ import annotations

import torch
import torch.nn as nn

from causmatch.interventions import Intervention, Random

EFFECT_VIOLATIONS = ("hardest", "sum")
EFFECT_LOSSES = ("hinge", "xent")


def _negatives(B: int, positives: torch.Tensor | None, device) -> torch.Tensor:
    """[B, B] bool: True where (image i, caption c) is a negative pair."""
    not_neg = torch.eye(B, dtype=torch.bool, device=device)
    if positives is not None:
        not_neg = not_neg | positives.to(device)
    return ~not_neg


def hinge_triplet(scores: torch.Tensor, margin: float = 0.2, hardest: bool = True,
                  positives: torch.Tensor | None = None, average: bool = False) -> torch.Tensor:
    """Hinge triplet loss on ``scores [B, B]`` (rows images, columns captions; the diagonal are the positives).

    Both directions (image → captions and caption → images), summed over the batch as SCAN / VSE++ do;
    ``hardest`` keeps only the hardest negative of each anchor. ``positives [B, B]`` bool marks further
    matching pairs (two captions of one image in the batch) that must not count as negatives.
    ``average`` (only with ``hardest=False``) divides each anchor's summed violations by its number of
    negatives, so the loss lives on the same scale as the hardest-negative one (a mean is at most the max).
    """
    B = scores.shape[0]
    diag = scores.diagonal().view(B, 1)  # [B, 1]
    neg = _negatives(B, positives, scores.device)  # [B, B]
    cost_c = (margin + scores - diag).clamp(min=0).masked_fill(~neg, 0)      # [B, B] image i vs wrong caption c
    cost_i = (margin + scores - diag.t()).clamp(min=0).masked_fill(~neg, 0)  # [B, B] caption c vs wrong image i
    if hardest:
        return cost_c.max(1)[0].sum() + cost_i.max(0)[0].sum()
    if average:  # an anchor without negatives contributes 0 (clamp avoids 0/0)
        return ((cost_c.sum(1) / neg.sum(1).clamp(min=1)).sum()
                + (cost_i.sum(0) / neg.sum(0).clamp(min=1)).sum())
    return cost_c.sum() + cost_i.sum()


def contrastive_xent(scores: torch.Tensor, temperature: float = 0.01,
                     positives: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax cross-entropy of each row and each column of ``scores [B, B] / temperature`` with the diagonal
    as the target class (CAL's classification form applied to the effect), summed over the 2B anchors so it
    is summed over the batch like :func:`hinge_triplet`. Other ``positives`` are left out of the softmax.
    Multiplied by ``temperature``: its gradient with respect to a score is then ``p − y`` (at most 1 per
    anchor, as the hinge's), whatever the temperature."""
    B = scores.shape[0]
    logits = scores / temperature  # [B, B]
    drop = ~_negatives(B, positives, scores.device) & ~torch.eye(B, dtype=torch.bool, device=scores.device)
    logits = logits.masked_fill(drop, float("-inf"))  # other captions of the same image are not negatives
    target = torch.arange(B, device=scores.device)
    ce = nn.functional.cross_entropy
    return temperature * (ce(logits, target, reduction="sum") + ce(logits.t(), target, reduction="sum"))


class CausMatchLoss(nn.Module):
    """``L = hinge(S) + λ_eff · L_eff(S − S_cf)``, with ``S_cf`` the scores under a counterfactual attention.

    ``lambda_eff = 0`` skips the counterfactual forward: that is the SCAN baseline, same code path.
    The effect term: ``effect_loss="hinge"`` (margin ``effect_margin``, ``None`` = ``margin``; violations
    ``effect_violation`` "hardest" or "sum" (averaged per anchor), ``None`` = as the ranking term) or
    ``"xent"`` (:func:`contrastive_xent` at ``effect_temperature``). It is off while the epoch given to
    :meth:`set_epoch` is below ``effect_warmup_epochs`` (the ranking term trains alone first).
    ``max_violation_warmup_epochs = N`` (with ``hardest``): the ranking term sums its violations over all
    in-batch negatives while the epoch is below N, then keeps the hardest negative (VSE++'s warm-up). The
    effect term's ``effect_violation=None`` follows ``hardest`` as configured, not the warm-up.
    """

    def __init__(self, lambda_eff: float = 1.0, intervention: Intervention | None = None, margin: float = 0.2,
                 hardest: bool = True, *, effect_margin: float | None = None, effect_violation: str | None = None,
                 effect_loss: str = "hinge", effect_temperature: float = 0.01, effect_warmup_epochs: int = 0,
                 max_violation_warmup_epochs: int = 0):
        super().__init__()
        if effect_violation not in (None, *EFFECT_VIOLATIONS) or effect_loss not in EFFECT_LOSSES:
            raise ValueError(f"effect_violation must be None or one of {EFFECT_VIOLATIONS}, "
                             f"effect_loss one of {EFFECT_LOSSES}")
        self.lambda_eff, self.margin, self.hardest = float(lambda_eff), float(margin), hardest
        self.intervention = Random() if intervention is None else intervention
        self.effect_margin = self.margin if effect_margin is None else float(effect_margin)
        self.effect_hardest = hardest if effect_violation is None else effect_violation == "hardest"
        self.effect_loss, self.effect_temperature = effect_loss, float(effect_temperature)
        self.effect_warmup_epochs, self.epoch = int(effect_warmup_epochs), 0
        self.max_violation_warmup_epochs = int(max_violation_warmup_epochs)

    def set_epoch(self, epoch: int) -> None:
        """Tell the loss the current (0-based) epoch, for the effect term's and the hardest negatives' warm-ups."""
        self.epoch = int(epoch)

    @property
    def rank_hardest(self) -> bool:
        """Whether the ranking term keeps only the hardest negative in the current epoch."""
        return self.hardest and self.epoch >= self.max_violation_warmup_epochs

    @property
    def effect_active(self) -> bool:
        return self.lambda_eff > 0 and self.epoch >= self.effect_warmup_epochs

    def effect_term(self, E: torch.Tensor, positives: torch.Tensor | None = None) -> torch.Tensor:
        """The effect loss on ``E [B, B]`` (no λ_eff factor)."""
        if self.effect_loss == "xent":
            return contrastive_xent(E, self.effect_temperature, positives)
        return hinge_triplet(E, self.effect_margin, self.effect_hardest, positives, average=True)

    def forward(self, matcher, img, txt, pair_ids=None) -> dict[str, torch.Tensor]:
        """img/txt: an aligned batch (:class:`ImageEmb` / :class:`TextEmb` of B each; pair b matches).

        ``pair_ids = (image_ids [B], caption_ids [B])``: global indices; they key the random counterfactual
        and mark same-image pairs as positives. Returns ``loss`` (with grad) and detached ``rank``,
        ``effect_rank``, ``mean_effect_pos`` (matching pairs), ``mean_effect_neg`` (others; NaN while the
        effect term is off).
        """
        positives = None
        if pair_ids is not None:
            im = torch.as_tensor(pair_ids[0], device=matcher.device)
            positives = im.view(-1, 1) == im.view(1, -1)  # [B, B]
        if not self.effect_active:
            S = matcher.similarity(img, txt, pair_ids=pair_ids).score  # [B, B]
        else:  # one cosine and learned-map pass shared by the factual and counterfactual scores
            S, S_cf = (x.score for x in matcher.similarity_many(img, txt, [None, self.intervention],
                                                                 pair_ids=pair_ids))  # [B, B] each
        rank = hinge_triplet(S, self.margin, self.rank_hardest, positives)
        nan = torch.tensor(float("nan"), device=S.device)
        out = {"rank": rank.detach(), "effect_rank": torch.zeros_like(rank).detach(),
               "mean_effect_pos": nan, "mean_effect_neg": nan}
        if not self.effect_active:
            out["loss"] = rank
            return out
        E = S - S_cf  # [B, B] effect of the learned attention per pair
        eff_rank = self.effect_term(E, positives)
        pos = torch.eye(len(S), dtype=torch.bool, device=S.device) if positives is None else positives
        out.update(loss=rank + self.lambda_eff * eff_rank, effect_rank=eff_rank.detach(),
                   mean_effect_pos=E.detach()[pos].mean(),
                   mean_effect_neg=E.detach()[~pos].mean() if (~pos).any() else nan)
        return out
