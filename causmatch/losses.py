"""Ranking losses: VSE++'s hinge triplet loss and the CausMatch loss ``L_rank(S) + λ_eff · L_rank(E)``."""
from __future__ import annotations

import torch
import torch.nn as nn

from causmatch.interventions import Intervention, Random


def hinge_triplet(scores: torch.Tensor, margin: float = 0.2, hardest: bool = True,
                  positives: torch.Tensor | None = None) -> torch.Tensor:
    """Hinge triplet loss on ``scores [B, B]`` (rows images, columns captions; the diagonal are the positives).

    Both directions (image → captions and caption → images), summed over the batch as SCAN / VSE++ do;
    ``hardest`` keeps only the hardest negative of each anchor. ``positives [B, B]`` bool marks further
    matching pairs (two captions of one image in the batch) that must not count as negatives.
    """
    B = scores.shape[0]
    diag = scores.diagonal().view(B, 1)  # [B, 1]
    cost_c = (margin + scores - diag).clamp(min=0)      # [B, B] image i vs wrong caption c
    cost_i = (margin + scores - diag.t()).clamp(min=0)  # [B, B] caption c vs wrong image i
    not_neg = torch.eye(B, dtype=torch.bool, device=scores.device)
    if positives is not None:
        not_neg = not_neg | positives.to(scores.device)
    cost_c = cost_c.masked_fill(not_neg, 0)
    cost_i = cost_i.masked_fill(not_neg, 0)
    if hardest:
        return cost_c.max(1)[0].sum() + cost_i.max(0)[0].sum()
    return cost_c.sum() + cost_i.sum()


class CausMatchLoss(nn.Module):
    """``L = hinge(S) + λ_eff · hinge(S − S_cf)``, with ``S_cf`` the scores under a counterfactual attention.

    ``lambda_eff = 0`` skips the counterfactual forward: that is the SCAN baseline, same code path.
    """

    def __init__(self, lambda_eff: float = 1.0, intervention: Intervention | None = None, margin: float = 0.2,
                 hardest: bool = True):
        super().__init__()
        self.lambda_eff, self.margin, self.hardest = float(lambda_eff), float(margin), hardest
        self.intervention = Random() if intervention is None else intervention

    def forward(self, matcher, img, txt, pair_ids=None) -> dict[str, torch.Tensor]:
        """img/txt: an aligned batch (:class:`ImageEmb` / :class:`TextEmb` of B each; pair b matches).

        ``pair_ids = (image_ids [B], caption_ids [B])``: global indices; they key the random counterfactual
        and mark same-image pairs as positives. Returns ``loss`` (with grad) and detached ``rank``,
        ``effect_rank``, ``mean_effect_pos`` (matching pairs), ``mean_effect_neg`` (others; NaN if λ_eff = 0).
        """
        positives = None
        if pair_ids is not None:
            im = torch.as_tensor(pair_ids[0], device=matcher.device)
            positives = im.view(-1, 1) == im.view(1, -1)  # [B, B]
        if self.lambda_eff == 0:
            S = matcher.similarity(img, txt, pair_ids=pair_ids).score  # [B, B]
        else:  # one cosine and learned-map pass shared by the factual and counterfactual scores
            S, S_cf = (x.score for x in matcher.similarity_many(img, txt, [None, self.intervention],
                                                                 pair_ids=pair_ids))  # [B, B] each
        rank = hinge_triplet(S, self.margin, self.hardest, positives)
        nan = torch.tensor(float("nan"), device=S.device)
        out = {"rank": rank.detach(), "effect_rank": torch.zeros_like(rank).detach(),
               "mean_effect_pos": nan, "mean_effect_neg": nan}
        if self.lambda_eff == 0:
            out["loss"] = rank
            return out
        E = S - S_cf  # [B, B] effect of the learned attention per pair
        eff_rank = hinge_triplet(E, self.margin, self.hardest, positives)
        pos = torch.eye(len(S), dtype=torch.bool, device=S.device) if positives is None else positives
        out.update(loss=rank + self.lambda_eff * eff_rank, effect_rank=eff_rank.detach(),
                   mean_effect_pos=E.detach()[pos].mean(),
                   mean_effect_neg=E.detach()[~pos].mean() if (~pos).any() else nan)
        return out
