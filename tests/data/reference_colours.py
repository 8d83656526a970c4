"""Independent reference colours for the procedural data's tests: what a person would call each
name, not the modules' own tables."""

import numpy as np

REF = {
    "red": (220, 30, 30),
    "green": (30, 180, 50),
    "blue": (40, 80, 240),
    "yellow": (245, 225, 30),
    "purple": (150, 50, 210),
    "orange": (255, 135, 0),
}


def colour_mask(img, colour):
    """[..., H, W] bool: the pixels within an L1 distance of 60 of the reference colour."""
    return np.abs(img.astype(int) - np.array(REF[colour])).sum(-1) < 60
