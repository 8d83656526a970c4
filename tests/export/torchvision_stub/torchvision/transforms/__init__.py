"""The transform classes open_clip's transform.py imports: they record their arguments."""

import enum


class InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


class _Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __call__(self, *args, **kwargs):
        raise RuntimeError("the torchvision stand-in of the tests cannot transform images")


class Compose(_Recorded):
    def __init__(self, transforms):
        super().__init__(transforms)
        self.transforms = transforms


class Normalize(_Recorded):
    def __init__(self, mean, std, inplace=False):
        super().__init__(mean, std)
        self.mean, self.std = mean, std


class Resize(_Recorded):
    def __init__(self, size, interpolation=InterpolationMode.BILINEAR, **kwargs):
        super().__init__(size, interpolation, **kwargs)
        self.size, self.interpolation = size, interpolation


class CenterCrop(_Recorded):
    def __init__(self, size):
        super().__init__(size)
        self.size = size


class RandomResizedCrop(_Recorded):
    pass


class ToTensor(_Recorded):
    pass


class ColorJitter(_Recorded):
    pass


class Grayscale(_Recorded):
    pass
