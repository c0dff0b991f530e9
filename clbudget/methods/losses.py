"""Losses shared by several methods, written once."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """Knowledge distillation (Hinton et al. 2015) as in iCaRL/WA/LwF's PyCIL code:
    cross-entropy between softened teacher and student, averaged over the batch.
    Both (B, K_old)."""
    log_p = F.log_softmax(student_logits.float() / T, dim=1)
    q = F.softmax(teacher_logits.float() / T, dim=1)
    return -(q * log_p).sum(1).mean()


def js_divergence(p_logits: torch.Tensor, q_logits: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """Jensen-Shannon divergence between two softmax distributions (KL to their mixture).
    MIND's paper and code use `symmetric_kl` instead."""
    p = F.softmax(p_logits.float() / T, dim=1)
    q = F.softmax(q_logits.float() / T, dim=1)
    m = 0.5 * (p + q)
    return 0.5 * (F.kl_div(m.log(), p, reduction="batchmean")
                  + F.kl_div(m.log(), q, reduction="batchmean"))


def symmetric_kl(p_logits: torch.Tensor, q_logits: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """0.5 KL(p || q) + 0.5 KL(q || p) between two softmax distributions, batch mean: MIND's
    distillation loss L_SD (Bonato et al. 2024; its code's `get_distill_loss_JS`)."""
    log_p = F.log_softmax(p_logits.float() / T, dim=1)
    log_q = F.log_softmax(q_logits.float() / T, dim=1)
    kl_pq = (log_p.exp() * (log_p - log_q)).sum(1)
    kl_qp = (log_q.exp() * (log_q - log_p)).sum(1)
    return 0.5 * (kl_pq + kl_qp).mean()


@torch.no_grad()
def align_weights(head_weight: torch.Tensor, old: int, seen: int) -> float:
    """Weight Aligning (Zhao et al. 2020, eq. 7): scale new-class weight rows so their mean
    norm equals the old classes'.  head_weight: (K, D), rows 0..old-1 old, old..seen-1 new.
    Returns gamma."""
    norms = head_weight[:seen].norm(dim=1)
    gamma = norms[:old].mean() / norms[old:seen].mean()
    head_weight[old:seen] *= gamma
    return float(gamma)
