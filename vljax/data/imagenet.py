"""ImageNet-1k (and -V2, -R, -A, -Sketch) as labelled splits, for `vljax prepare`.

```
vljax prepare --from-imagenet val/ --name imagenet --data-dir D            # val/n01440764/*.JPEG
vljax prepare --from-imagenet val_flat/ --labels ILSVRC2012_validation_ground_truth.txt \
    --name imagenet --data-dir D                                           # + meta.mat beside it
vljax prepare --from-imagenet imagenet-r/ --name imagenet_r --data-dir D   # 200 wnid folders
```

Two layouts:

- Class folders: `DIR/<class>/<image>`, where `<class>` is a wnid (`n01440764`: the ImageNet
  validation and training folders as most copies hold them, ImageNet-Sketch, -R, -A) or a
  class index 0-999 (ImageNet-V2's folders). Folders that are neither are skipped, one
  skip per folder, with the number of files left unread.
- Flat, with labels: `DIR/ILSVRC2012_val_00000001.JPEG ...` and `--labels FILE`, one line per
  image in file order: line N labels the image whose name ends in the number N. A line is a
  wnid (TF's `imagenet_2012_validation_synset_labels.txt`) or a 1-based ILSVRC2012_ID (the
  devkit's `ILSVRC2012_validation_ground_truth.txt`); the IDs are mapped to wnids with the
  devkit's `meta.mat`, read from the folder of FILE (`ILSVRC2012_devkit_t12/data/` holds both).

Every example's label is its wnid, so the split's classes are the wnids present, sorted: the
standard ImageNet-1k order (for the full validation set, the 1,000 classes with their usual
indices 0-999; for -R and -A, their 200 classes in the same order). The zero-shot eval's
`classnames: "imagenet"` names them from vljax/evals/imagenet_metadata.py. Images have no
captions. Missing or unreadable images are skipped and counted by `prepare.prepare`.
"""

from __future__ import annotations

import os
import re

from vljax.data.records import IMAGE_EXTS, Record, Skip
from vljax.errors import DataError
from vljax.evals.imagenet_metadata import IMAGENET_NAMES, IMAGENET_WNIDS

_WNID = re.compile(r"^n\d{8}$")
_NUMBER = re.compile(r"(\d+)$")


def class_wnid(folder: str) -> str | None:
    """A class folder's wnid: the name itself (a wnid of ImageNet-1k) or the wnid of a class
    index 0-999 (ImageNet-V2); None for any other folder."""
    if folder in IMAGENET_NAMES:
        return folder
    if folder.isdigit() and int(folder) < len(IMAGENET_WNIDS) and str(int(folder)) == folder:
        return IMAGENET_WNIDS[int(folder)]
    return None


def _images(folder: str) -> list[str]:
    """Image files under folder (any depth), sorted."""
    out = []
    for dirpath, _, files in sorted(os.walk(folder)):
        out += [os.path.join(dirpath, f) for f in sorted(files)]
    return [p for p in out if os.path.splitext(p)[1].lower() in IMAGE_EXTS]


def imagenet_records(
    root: str, labels_path: str | None, split: str, skips: list[Skip]
) -> list[Record]:
    """The images of an ImageNet folder as labelled Records (see the module docstring)."""
    if not os.path.isdir(root):
        raise DataError(
            f"--from-imagenet {root!r} is not a folder; pass the validation folder (class "
            "folders n01440764/ ..., or the flat ILSVRC2012_val_*.JPEG files with --labels)"
        )
    if labels_path:
        return _flat_records(root, labels_path, split, skips)
    records, folders = (
        [],
        sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))),
    )
    for folder in folders:
        wnid = class_wnid(folder)
        paths = _images(os.path.join(root, folder))
        if wnid is None:
            skips.append(
                Skip(
                    folder + "/",
                    "not a class folder",
                    f"{len(paths)} images not read: the name is neither an ImageNet-1k wnid "
                    "(n01440764) nor a class index 0-999",
                )
            )
            continue
        records += [
            Record(source=os.path.relpath(p, root), captions=[], label=wnid, split=split, path=p)
            for p in paths
        ]
    if not records and not any(s.reason == "not a class folder" for s in skips):
        flat = [f for f in os.listdir(root) if os.path.splitext(f)[1].lower() in IMAGE_EXTS]
        fix = (
            f"it holds {len(flat)} images directly: the flat layout needs --labels "
            "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt"
            if flat
            else "pass the folder whose subfolders are the classes (n01440764/ ...)"
        )
        raise DataError(f"--from-imagenet {root!r} has no class folders with images; {fix}")
    return records


def _read_labels(labels_path: str) -> list[str]:
    """--labels FILE -> one wnid per line (line N: the image numbered N)."""
    if not os.path.isfile(labels_path):
        raise DataError(
            f"--labels {labels_path!r} does not exist; pass the devkit's "
            "ILSVRC2012_validation_ground_truth.txt or a file with one wnid per image"
        )
    with open(labels_path, encoding="utf-8-sig") as f:
        lines = [line.strip() for line in f if line.strip()]
    for n, line in enumerate(lines, 1):
        if not (_WNID.match(line) or line.isdigit()):
            raise DataError(
                f"{labels_path}:{n}: {line[:40]!r} is neither a wnid (n01440764) nor an "
                "ILSVRC2012_ID (1-1000); --labels takes one of those per line"
            )
    if all(_WNID.match(line) for line in lines):
        wnids = lines
    elif all(line.isdigit() for line in lines):
        meta = os.path.join(os.path.dirname(os.path.abspath(labels_path)), "meta.mat")
        by_id = _ids_to_wnids(meta)
        wnids = []
        for n, line in enumerate(lines, 1):
            if int(line) not in by_id:
                raise DataError(f"{labels_path}:{n}: ILSVRC2012_ID {line} is not in 1-1000")
            wnids.append(by_id[int(line)])
    else:
        raise DataError(f"{labels_path} mixes wnids and ILSVRC2012_IDs; use one kind per file")
    for n, wnid in enumerate(wnids, 1):
        if wnid not in IMAGENET_NAMES:
            raise DataError(f"{labels_path}:{n}: {wnid} is not one of the ImageNet-1k classes")
    return wnids


def _ids_to_wnids(meta_path: str) -> dict[int, str]:
    """The devkit's meta.mat: ILSVRC2012_ID (1-1000, the leaf synsets) -> wnid."""
    if not os.path.isfile(meta_path):
        raise DataError(
            f"the --labels file holds ILSVRC2012_IDs, which need the devkit's meta.mat to map "
            f"them to wnids, and {meta_path} does not exist; put ILSVRC2012_devkit_t12/data/"
            "meta.mat next to the labels file (the devkit has both in data/), or pass a file "
            "of wnids per image instead"
        )
    import scipy.io

    try:
        synsets = scipy.io.loadmat(meta_path, squeeze_me=True)["synsets"]
        ids, wnids = synsets["ILSVRC2012_ID"], synsets["WNID"]
    except (KeyError, ValueError, TypeError, OSError) as e:
        raise DataError(
            f"{meta_path} is not the devkit's meta.mat (a 'synsets' struct with ILSVRC2012_ID "
            f"and WNID fields): {type(e).__name__}: {e}"
        ) from None
    return {int(i): str(w) for i, w in zip(ids, wnids, strict=True) if 1 <= int(i) <= 1000}


def _flat_records(root: str, labels_path: str, split: str, skips: list[Skip]) -> list[Record]:
    wnids = _read_labels(labels_path)
    paths = sorted(
        os.path.join(root, f)
        for f in os.listdir(root)
        if os.path.splitext(f)[1].lower() in IMAGE_EXTS and os.path.isfile(os.path.join(root, f))
    )
    if not paths:
        raise DataError(
            f"--from-imagenet {root!r} with --labels holds no image files; the flat layout is "
            "the folder of ILSVRC2012_val_00000001.JPEG ... (class folders need no --labels)"
        )
    records = []
    for path in paths:
        name = os.path.basename(path)
        number = _NUMBER.search(os.path.splitext(name)[0])
        if number is None or not 1 <= int(number.group(1)) <= len(wnids):
            detail = (
                f"no line {int(number.group(1))} in {os.path.basename(labels_path)} "
                f"({len(wnids)} lines)"
                if number
                else "the name ends in no image number (ILSVRC2012_val_00000001.JPEG)"
            )
            skips.append(Skip(name, "no label", detail))
            continue
        wnid = wnids[int(number.group(1)) - 1]
        records.append(Record(source=name, captions=[], label=wnid, split=split, path=path))
    return records
