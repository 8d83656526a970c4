"""vljax's token contract, in one place: SentencePiece ids pad 0, eos 1, unk 2, no BOS.

A text is its pieces followed by EOS, right-padded with PAD. EOS is 1, not 2, so that
transformers' CLIP text pooling (which picks the first occurrence of `eos_token_id`, or the
largest id for old configs) finds it; see docs/internals.md.
"""

PAD_ID = 0
EOS_ID = 1
UNK_ID = 2
BOS_ID = -1  # none
