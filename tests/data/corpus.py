"""Small generated corpora of real image files for the prepare tests."""

import io
import json
import os
import tarfile

import numpy as np
from PIL import Image

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 50), "blue": (40, 80, 240)}


def image(colour, size=(40, 30), mode="RGB"):
    img = Image.new("RGB", size, COLOURS[colour])
    return img if mode == "RGB" else img.convert(mode)


def encode(img, fmt):
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def write_manifest_corpus(root, n_per_class=4, messy=False):
    """Labelled colour images with en/zh captions; returns (manifest path, good count)."""
    os.makedirs(root, exist_ok=True)
    zh = {"red": "红色", "green": "绿色", "blue": "蓝色"}
    lines, good = [], 0
    for c in COLOURS:
        for i in range(n_per_class):
            fmt = "PNG" if i % 2 else "JPEG"
            name = f"{c}_{i}.{fmt.lower()}"
            with open(os.path.join(root, name), "wb") as f:
                f.write(encode(image(c), fmt))
            split = "test" if i == 0 else "train"
            cap = {"en": f"a {c} picture", "zh": f"一张{zh[c]}的图片"}
            lines.append(dict(image=name, caption=cap, label=c, split=split))
            good += 1
    if messy:
        with open(os.path.join(root, "cmyk.jpg"), "wb") as f:
            f.write(encode(image("red", mode="CMYK"), "JPEG"))
        with open(os.path.join(root, "rgba.png"), "wb") as f:
            f.write(encode(image("green", mode="RGBA"), "PNG"))
        with open(os.path.join(root, "gray.png"), "wb") as f:
            f.write(encode(image("blue", mode="L"), "PNG"))
        g16 = Image.fromarray(np.full((10, 12), 40000, np.uint16))
        g16.save(os.path.join(root, "gray16.png"))
        big = Image.new("RGB", (300, 100), COLOURS["blue"])
        big.save(os.path.join(root, "big.png"))
        for name, cap in [
            ("cmyk.jpg", ["a red picture", "red again"]),
            ("rgba.png", "a green picture"),
            ("gray.png", "a gray picture"),
            ("gray16.png", "a 16-bit picture"),
            ("big.png", "a big blue picture"),
        ]:
            lines.append(dict(image=name, caption=cap))
            good += 1
        full = encode(image("red", (64, 64)), "JPEG")
        with open(os.path.join(root, "truncated.jpg"), "wb") as f:
            f.write(full[: len(full) // 2])
        with open(os.path.join(root, "text.jpg"), "w") as f:
            f.write("this is not an image")
        open(os.path.join(root, "empty.jpg"), "wb").close()
        lines += [
            dict(image="truncated.jpg", caption="truncated"),
            dict(image="text.jpg", caption="text as image"),
            dict(image="empty.jpg", caption="empty"),
            dict(image="missing.jpg", caption="missing file"),
            dict(caption="no image field"),
            dict(image="big.png"),  # no caption, no label
            "{not json",
            [1, 2],
        ]
    path = os.path.join(root, "manifest.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line if isinstance(line, str) else json.dumps(line, ensure_ascii=False))
            f.write("\n")
    return path, good


EXPECTED_SKIPS = {
    "unreadable image": 1,  # truncated
    "not an image": 1,  # text
    "empty file": 1,
    "missing file": 1,
    "missing field": 2,  # no image; no caption and no label
    "bad json": 2,  # invalid line; not an object
}


def write_folder_corpus(root, n=4):
    for c in COLOURS:
        d = os.path.join(root, c)
        os.makedirs(d, exist_ok=True)
        for i in range(n):
            image(c).save(os.path.join(d, f"{i}.jpg"))
            with open(os.path.join(d, f"{i}.txt"), "w") as f:
                f.write(f"a {c} picture\nanother {c} caption\n")
    image("red").save(os.path.join(root, "red", "nocaption.jpg"))


def write_webdataset_corpus(root, n=4):
    os.makedirs(root, exist_ok=True)
    paths = []
    for s, cs in enumerate([["red", "green"], ["blue"]]):
        path = os.path.join(root, f"shard-{s}.tar")
        with tarfile.open(path, "w") as tar:
            for c in cs:
                for i in range(n):
                    key = f"{c}{i:03d}"
                    members = {f"{key}.jpg": encode(image(c), "JPEG")}
                    if i % 2:
                        members[f"{key}.txt"] = f"a {c} picture".encode()
                    else:
                        members[f"{key}.json"] = json.dumps(
                            {"caption": {"en": f"a {c} picture"}, "label": c}
                        ).encode()
                    for name, data in members.items():
                        info = tarfile.TarInfo(name)
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
            info = tarfile.TarInfo("orphan.txt")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
        paths.append(path)
    return paths
