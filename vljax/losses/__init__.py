"""Objectives. `contrastive_loss` is the sharded CLIP/SigLIP core (see docs/losses.md)."""

from vljax.losses.contrastive import IMPLS, KINDS, contrastive_loss

__all__ = ["IMPLS", "KINDS", "contrastive_loss"]
