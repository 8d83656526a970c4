"""`FrozenBatchNorm2d`, imported by open_clip/utils.py; used only by ResNet towers."""

import torch


class FrozenBatchNorm2d(torch.nn.Module):
    def __init__(self, num_features, eps=1e-5):
        raise RuntimeError("the torchvision stand-in of the tests has no FrozenBatchNorm2d")
