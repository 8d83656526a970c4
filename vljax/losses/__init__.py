"""Objectives. `contrastive_loss` is the sharded CLIP/SigLIP core, `filip_loss` FILIP's
token-wise late interaction (see docs/losses.md)."""

from vljax.losses.contrastive import IMPLS, KINDS, contrastive_loss
from vljax.losses.filip import filip_loss

__all__ = ["IMPLS", "KINDS", "contrastive_loss", "filip_loss"]
