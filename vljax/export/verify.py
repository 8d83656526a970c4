"""`vljax export --verify`: transformers (its own processor + tokenizer) vs vljax on probes.

Probe texts cover English, Chinese, the empty string and a text longer than the context;
probe images have several sizes and aspect ratios so resize and crop are exercised.
"""

import numpy as np

from vljax.export.remote_code import refuse_remote_code

PROBE_TEXTS = [
    "a red circle",
    "a big green square to the left of a small blue triangle",
    "",
    "红色的圆形",
    "一个大的绿色圆形在一个大的绿色十字形的上面",
    "a small purple star above a big orange hexagon " * 10,  # longer than the context
]


def probe_images(seed=0):
    rs = np.random.RandomState(seed)
    sizes = [(64, 64), (80, 61), (37, 128), (300, 200), (23, 500)]
    return [rs.randint(0, 256, s + (3,), dtype=np.uint8) for s in sizes]


def transformers_embeddings(folder, images, texts):
    """L2-normalised (image, text) embeddings from AutoModel + AutoProcessor of `folder`."""
    import torch
    from transformers import AutoModel, AutoProcessor

    refuse_remote_code(folder)
    model = AutoModel.from_pretrained(folder, trust_remote_code=False).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=False)
    inputs = processor(
        text=texts, images=images, padding="max_length", truncation=True, return_tensors="pt"
    )
    with torch.no_grad():
        zi = model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
        zt = model.get_text_features(
            input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask")
        ).pooler_output
    norm = lambda z: (z / z.norm(dim=-1, keepdim=True)).float().numpy()
    return norm(zi), norm(zt), inputs["input_ids"].numpy()


def verify_export(encoder, folder, images=None, texts=None):
    """Max abs differences between a vljax encoder and the exported folder in transformers."""
    images = probe_images() if images is None else images
    texts = PROBE_TEXTS if texts is None else texts
    zi, zt, ids = transformers_embeddings(folder, images, texts)
    ours_ids = encoder.tokenizer.encode(list(texts), encoder.model_config.text.max_len)
    return dict(
        image_max_abs_diff=float(np.abs(zi - encoder.encode_images(images)).max()),
        text_max_abs_diff=float(np.abs(zt - encoder.encode_texts(texts)).max()),
        token_ids_equal=bool(np.array_equal(ids, ours_ids)),
    )
