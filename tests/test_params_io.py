"""The one param-shape check shared by init_from (train/state.py) and import/export
(export/hf_import.py)."""

import numpy as np

from vljax.params_io import shape_mismatches, shapes_of


def test_shape_mismatches_name_every_difference():
    want = shapes_of({"img": {"kernel": np.zeros((2, 3))}, "bias": np.zeros(4)})
    got = shapes_of({"img": {"kernel": np.zeros((3, 2))}, "extra": np.zeros(1)})
    assert want == {"img/kernel": (2, 3), "bias": (4,)}
    assert shape_mismatches(want, got) == [
        "bias: missing from the loaded params (model expects (4,))",
        "extra: not a parameter of this model (loaded (1,))",
        "img/kernel: loaded shape (3, 2), model expects (2, 3)",
    ]
    assert shape_mismatches(want, want) == []
