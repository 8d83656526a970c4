"""Objectives. `contrastive_loss` is the sharded CLIP/SigLIP core, `filip_loss` FILIP's
token-wise late interaction, `negnce_loss` InfoNCE with an explicit hard-negative term,
`symile_loss` Symile's multilinear contrast of M >= 3 modalities, `multi_positive_loss` the
1-to-K loss (K captions per image, all positives of its row) (see docs/losses.md)."""

from vljax.losses.contrastive import IMPLS, KINDS, contrastive_loss
from vljax.losses.filip import filip_loss
from vljax.losses.multi_positive import multi_positive_loss
from vljax.losses.negnce import negnce_loss
from vljax.losses.symile import symile_loss

__all__ = [
    "IMPLS",
    "KINDS",
    "contrastive_loss",
    "filip_loss",
    "multi_positive_loss",
    "negnce_loss",
    "symile_loss",
]
