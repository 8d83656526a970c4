"""`vljax.load(HF folder)`: a transformers CLIP/SigLIP folder run by vljax's own JAX model."""

import os


def load_hf_encoder(path, batch_size=256):
    """An encoder with `encode_images(uint8 [N,H,W,3])` / `encode_texts(list[str])`.

    The checkpoint is imported (`hf_import.import_params`) and run with the vljax model; the
    folder's tokenizer is used as it is: vljax's SentencePiece model when the folder was
    exported by vljax (`spiece.model`), else its `tokenizer.json` (`HFTokenizer`).
    """
    from vljax.export.hf_import import import_hf_folder
    from vljax.inference import Encoder
    from vljax.models import build_model

    imported = import_hf_folder(path)
    model = build_model(imported.model_config)
    enc = Encoder(model, imported.model_config, imported.params, load_folder_tokenizer(path),
                  batch_size=batch_size)  # fmt: skip
    enc.family = imported.family
    return enc


def load_folder_tokenizer(path):
    from vljax.export.hf_tokenizer import SPIECE_NAME, HFTokenizer

    sp = os.path.join(path, SPIECE_NAME)
    if os.path.exists(sp) and _is_vljax_sentencepiece(sp):
        from vljax.data.tokenizer import Tokenizer

        return Tokenizer(sp)
    return HFTokenizer(path)


def _is_vljax_sentencepiece(sp_path):
    from vljax.export.hf_tokenizer import check_sentencepiece_ids

    try:
        check_sentencepiece_ids(sp_path)
        return True
    except ValueError:
        return False
