"""Long-CLIP's two towers (arXiv 2403.15378): CLIP's, also embedding each example's short
caption (`txt/short_emb`, when the batch has `short_tokens`) for primary component matching.
The parameters are TwoTower's, with a longer text position table."""

from vljax.models.two_tower import TwoTower


class LongClip(TwoTower):
    def __call__(self, batch, train: bool = False):
        out = super().__call__(batch, train=train)
        if "short_tokens" in batch:
            out["txt/short_emb"] = self.encode_texts(batch["short_tokens"])
        return out
