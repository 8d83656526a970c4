"""Shared presets and defaults for every recipe.

A recipe calls `base_config()` and then sets what differs. Size presets follow the
ViT paper / big_vision naming (Ti, S, B, L, H, g) for both towers.
"""

import ml_collections

from vljax.token_ids import EOS_ID, PAD_ID

# name -> (width, depth, heads, mlp_dim)
VIT_SIZES = {
    "Ti": (192, 12, 3, 768),
    "S": (384, 12, 6, 1536),
    "B": (768, 12, 12, 3072),
    "L": (1024, 24, 16, 4096),
    "H": (1280, 32, 16, 5120),
    "g": (1408, 40, 16, 6144),
}

# CLIP-style text towers are narrower than the image tower of the same name.
TEXT_SIZES = {
    "Ti": (192, 12, 3, 768),
    "S": (384, 12, 6, 1536),
    "B": (512, 12, 8, 2048),
    "L": (768, 12, 12, 3072),
    "H": (1024, 24, 16, 4096),
    "g": (1024, 24, 16, 4096),
}


def image_tower(size, patch_size, image_size, pool="cls", posemb="learn"):
    width, depth, heads, mlp_dim = VIT_SIZES[size]
    return ml_collections.ConfigDict(
        dict(
            image_size=image_size,
            patch_size=patch_size,
            width=width,
            depth=depth,
            heads=heads,
            mlp_dim=mlp_dim,
            pool=pool,  # cls | gap | map
            posemb=posemb,  # learn | sincos2d
            pre_norm=False,  # LayerNorm on the embeddings before the encoder (HF CLIP)
            stem="patch",  # patch (ViT) | conv (stride-2 3x3 convs, not exportable to HF)
            stem_width=16,  # conv stems: channels of the first conv, doubling up to width
            mask_ratio=0.0,  # FLIP patch dropout in training (configs/flip.py); 0 = off
            proj="linear",  # linear (CLIP) | none (SigLIP: the pooled output is the embedding)
        )
    )


def text_tower(size, vocab_size, max_len, causal=True, pool="eos"):
    width, depth, heads, mlp_dim = TEXT_SIZES[size]
    return ml_collections.ConfigDict(
        dict(
            vocab_size=vocab_size,
            max_len=max_len,
            width=width,
            depth=depth,
            heads=heads,
            mlp_dim=mlp_dim,
            causal=causal,
            pool=pool,  # eos | last | first | mean
            eos_id=EOS_ID,  # the id that ends a text (eos pooling picks its first occurrence)
            pad_id=PAD_ID,  # None = no padding mask (big_vision SigLIP checkpoints)
            proj="linear",  # linear (CLIP, no bias) | linear_bias (SigLIP head)
        )
    )


def base_config():
    """Defaults shared by every recipe; recipes override what differs."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.batch_size = 256  # global
    c.total_steps = 1000
    c.log_every_steps = 10
    c.checkpoint_every_steps = 500
    c.keep_checkpoints = 3
    c.eval_every_steps = 0  # 0 = only at the end

    c.method = "clip"  # vljax/methods/<name>.py; clip covers CLIP and SigLIP (loss.kind)

    c.model = ml_collections.ConfigDict()
    c.model.embed_dim = 512
    c.model.image = image_tower("B", 16, 224)
    c.model.text = text_tower("B", 32000, 64)
    # CoCa's multimodal text decoder (configs/coca.py); its width, heads and MLP are the text
    # tower's. pool_queries: learned queries of the attentional pooler it cross-attends to.
    c.model.decoder = ml_collections.ConfigDict(dict(depth=1, pool_queries=16))
    # SyCoCa's masked image modeling (configs/sycoca.py): the fraction of patches masked,
    # attentive (the ones the caption attends to most) | random, reconstruction decoder depth.
    c.model.mim = ml_collections.ConfigDict(dict(ratio=0.5, masking="attentive", decoder_depth=1))
    # Symile's third tower (configs/symile.py): a text transformer (causal, EOS-pooled) over the
    # third modality's tokens, which have their own vocabulary (vljax/data/third_modality.py).
    c.model.third = ml_collections.ConfigDict(
        dict(vocab_size=32, max_len=8, width=128, depth=1, heads=4, mlp_dim=512)
    )
    # Video methods (configs/video_clip.py): frames per clip (the data pipeline's clip length
    # too), temporal pooling of the frame embeddings: mean | transformer (a small transformer
    # of `depth` blocks with learned temporal position embeddings, then the mean; its heads
    # must divide model.embed_dim and mlp_dim is its MLP width) |
    # space_time (Frozen in Time's divided attention in the ViT, then the mean;
    # configs/frozen_in_time.py) | xpool (method xpool: frames pooled per text by `heads`-head
    # cross-attention; configs/xpool.py) | early (the frames stacked on the channel axis, one
    # ViT pass per clip).
    c.model.video = ml_collections.ConfigDict(
        dict(frames=8, temporal="mean", depth=1, heads=4, mlp_dim=512)
    )
    # SNP-S3 (configs/snp_s3.py): the shared network over the projected text and frame
    # features (depth, heads dividing model.embed_dim, MLP width) and the significant pieces
    # per caption that masked language modelling hides (vljax/models/snp_s3.py); the S3 tasks
    # (mlm, matching) run on every `s3_every`-th example of the batch (1: all).
    c.model.snp = ml_collections.ConfigDict(
        dict(depth=2, heads=4, mlp_dim=512, mask_words=2, s3_every=1)
    )
    c.model.activation = "gelu"  # gelu (exact) | gelu_tanh | quick_gelu
    c.model.ln_eps = 1e-5
    c.model.dtype = "float32"  # compute dtype; params are always float32
    c.model.attention = "xla"  # xla | cudnn (fused kernel on GPU, the xla form elsewhere)
    c.model.remat = False  # recompute each encoder block in the backward pass
    c.model.remat_policy = "full"  # with remat: full | dots_saveable (keeps matmul outputs)
    c.model.scan = False
    c.model.scale_init = 1 / 0.07  # stored as log(scale)
    c.model.bias_init = ml_collections.config_dict.placeholder(float)  # None = no bias
    c.init_from = ""  # a vljax run directory, or a folder written by `vljax import`
    # Long-CLIP (configs/long_clip.py): a text position table loaded by init_from that is
    # shorter than model.text.max_len keeps its first `keep_positions` rows and is
    # interpolated by `stretch` over the rest (max_len = keep + (loaded - keep) * stretch).
    c.long_clip = ml_collections.ConfigDict(dict(keep_positions=20, stretch=4))
    c.init_from_include = []  # regexes over param paths to take from it; [] = all (LiT: ^img/)

    c.loss = ml_collections.ConfigDict()
    # {term: weight}, e.g. {"contrastive": 1.0, "caption": 2.0}; empty = the method's default
    # terms (vljax/losses/terms.py). Every term is logged as loss/<term> beside the total.
    c.loss.terms = ml_collections.ConfigDict()
    c.loss.kind = "softmax"  # softmax | sigmoid
    c.loss.impl = "all_gather"  # all_gather | ring | grouped
    c.loss.chunk = ml_collections.config_dict.placeholder(int)
    c.loss.group_size = ml_collections.config_dict.placeholder(int)
    # Long-CLIP's short-caption term: image embeddings reduced to this many principal comps.
    c.loss.primary_components = 32
    # NegNCE (term "negnce", configs/negnce.py): hard negatives beat their positive by more
    # than this many logits; their mean term is added with this weight.
    c.loss.negnce_margin = 0.0
    c.loss.negnce_weight = 1.0
    # TPM-CL (term "tpm_cl", configs/tpm_cl.py): each caption with this fraction of its pieces
    # masked (relevance: the ones its match rests on | random) must score below the caption,
    # for its image, by tpm_margin (cosine) x the fraction masked.
    c.loss.tpm_margin = 0.2
    c.loss.tpm_mask_ratio = 0.3
    c.loss.tpm_masking = "relevance"  # relevance | random
    # Symile (term "symile", configs/symile.py): n (O(N) negatives) | n_squared (O(N^2)).
    c.loss.symile_negatives = "n"

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.learning_rate = 1e-3
    c.optimizer.warmup_steps = 100
    c.optimizer.schedule = "cosine"  # cosine | constant
    c.optimizer.end_learning_rate_factor = 0.0
    c.optimizer.b1 = 0.9
    c.optimizer.b2 = 0.98
    c.optimizer.eps = 1e-6
    c.optimizer.weight_decay = 0.1
    c.optimizer.grad_clip_norm = 1.0
    c.optimizer.accum_steps = 1
    c.optimizer.frozen = []  # regexes over "/"-joined param paths, e.g. ["^img/"] for LiT
    c.optimizer.max_nonfinite_in_a_row = 10
    # Clip and AdamW on one vector per group of params (decayed or not): a smaller compiled
    # step for many small params (the :tiny recipes); replicated params only (optimizer.py).
    c.optimizer.flatten = False

    c.tokenizer = ml_collections.ConfigDict()
    c.tokenizer.model = ml_collections.config_dict.placeholder(str)  # None = train one
    c.tokenizer.vocab_size = 32000
    c.tokenizer.lowercase = False
    c.tokenizer.train_captions = 200_000  # captions a run trains its tokenizer on
    c.tokenizer.normalize_punct = False  # NFKC, curly quotes and dashes to ASCII (tokenizer.py)

    c.data = ml_collections.ConfigDict()
    c.data.data_dir = ml_collections.config_dict.placeholder(str)
    # Not type-safe: `dataset` is a string or a {"tfds:a": 0.7, "tfds:b": 0.3} mixture.
    c.data.train = ml_collections.ConfigDict(type_safe=False)
    c.data.train.dataset = "shapes"  # shapes | tfds:NAME[:SPLIT] | {"tfds:a": 0.7, ...}
    c.data.train.size = 100_000  # examples in the procedural shapes source
    c.data.train.lang = "en"  # caption language(s); "any" samples among them
    # Methods with several captions per example (multi_caption: configs/m2_encoder.py,
    # one_to_k.py, multi_positive.py; batch field multi_tokens [B, K, L]): "languages" = one
    # caption per language of data.train.lang, in its order (K = their number) | "sentences" =
    # the sentences of the picked caption (DreamLIP's sub-captions), up to
    # captions_per_example = K of them sampled per example. An absent caption is an all-PAD row.
    c.data.train.multi_captions = "languages"
    c.data.train.captions_per_example = 4  # K for "sentences"; "languages" has one per language
    # Methods over three modalities (Symile): the probability that each modality of a
    # training example is missing (replaced by a blank placeholder the towers embed).
    c.data.train.missing_prob = 0.0
    c.data.num_workers = 0  # decoding processes; 0 = in the training process
    c.data.prefetch = 2  # batches each worker keeps ready
    c.data.read_threads = 0  # grain's ArrayRecord read threads; 0 = grain's default
    # Train augmentation (vljax/data/preprocess.py); None = the dataset's default (the
    # procedural shapes turn cropping off: a resampled crop blurs the edges that tell shapes).
    c.data.augment = ml_collections.ConfigDict()
    c.data.augment.crop_scale = ml_collections.config_dict.placeholder(tuple)  # area fraction
    c.data.augment.crop_ratio = ml_collections.config_dict.placeholder(tuple)  # aspect range
    c.data.augment.brightness = ml_collections.config_dict.placeholder(float)
    c.data.augment.contrast = ml_collections.config_dict.placeholder(float)
    c.data.augment.flip = ml_collections.config_dict.placeholder(bool)

    c.evals = ml_collections.ConfigDict()

    # Device counts per axis (one may be -1: the rest). dcn_data = K > 1: a hybrid mesh, the
    # data axis split K ways over the network between hosts / TPU slices (K = their number),
    # the rest inside each one (vljax/sharding.py make_mesh; docs/scaling.md).
    c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1, dcn_data=1))
    c.sharding = ml_collections.ConfigDict()
    c.sharding.rules = fsdp_rules()
    return c


def fsdp_rules():
    """Logical axis -> mesh axes. Batch over data x fsdp; the embed dim of params over fsdp."""
    return [
        ("batch", ("data", "fsdp")),
        ("embed", "fsdp"),
        ("mlp", "tensor"),
        ("heads", "tensor"),
        ("kv", None),
        ("vocab", "tensor"),
        ("length", None),
        ("patch", None),
        ("act_embed", None),
        ("act_mlp", "tensor"),
        ("act_heads", "tensor"),
    ]
