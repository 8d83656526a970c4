"""SNP-S3 (arXiv 2401.17773): Shared Network Pre-training with Significant Semantic
Strengthening, on video_clip's towers (vljax/models/snp_s3.py). One shared BERT-type network
refines the text features (the contrastive text embedding) and the cross-modal text + frame
features; three terms: `contrastive` (video-text, the sharded losses), `mlm` (masked language
modelling of each caption's most significant pieces, in-batch tf-idf,
vljax/models/significant_words.py) and `matching` (video-text matching against hard
negatives whose significant piece is swapped for one of the same kind). Retrieval embeds
clips with `encode_videos` and captions with `encode_texts` (tower + shared text mode), as
video_clip does; no export format."""

from vljax.methods import video_clip
from vljax.methods.method import Method, dot_similarity, model_builder
from vljax.models.snp_s3 import SNPS3

build_model = model_builder(SNPS3)


METHOD = Method(
    name="snp_s3",
    build_model=build_model,
    example_batch=video_clip.example_batch,
    batch_fields=("video", "video_frames", "tokens"),
    encode_videos="encode_videos",
    default_terms={"contrastive": 1.0, "mlm": 1.0, "matching": 1.0},
    similarity=dot_similarity,
    same_modality_similarity=dot_similarity,
    rng_purposes=("mask",),  # the frame ViT's patch dropout (model.image.mask_ratio > 0)
    # The significance (document frequency) and the swapped negatives' donors are the batch's.
    cached_accumulation=False,
)
