"""Names open_clip's transform.py calls through `F.`; only reached when transforming images."""


def _unavailable(*args, **kwargs):
    raise RuntimeError("the torchvision stand-in of the tests cannot transform images")


resize = crop = pad = get_dimensions = to_tensor = _unavailable
