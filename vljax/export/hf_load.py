"""`vljax.load(HF folder)`: a transformers CLIP/SigLIP folder run by vljax's own JAX model."""


def load_hf_encoder(path, batch_size=256):
    """An encoder with `encode_images(uint8 [N,H,W,3])` / `encode_texts(list[str])`.

    The checkpoint is imported (`hf_import.import_hf_folder`) and run with the vljax model; the
    folder's tokenizer is used as it is: vljax's SentencePiece model when the folder was
    exported by vljax (`spiece.model`), else transformers' tokenizer (`HFTokenizer`).
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
    """vljax's Tokenizer for folders vljax exported, else transformers' own (HFTokenizer)."""
    from vljax.export.hf_tokenizer import load_tokenizer

    return load_tokenizer(path)
