"""M2-Encoder's grouped aggregation (Guo et al. 2024, arXiv 2401.15896).

A different, cheaper objective than the global contrastive loss: the P devices along the
batch axes form P / G groups of G = group_size consecutive devices (flattened index over
batch_axes, major to minor; pick G = the devices of one host or one fast-interconnect island),
and negatives are gathered only within a group. With B_g = G * b samples per group,

  loss = (1 / (P / G)) * sum_groups loss_g(group's B_g rows and columns)
       = (1/B) * sum over all B rows of the row terms, each normalised within its group,

where loss_g is the softmax or sigmoid loss of DESIGN.md on the group's own B_g x B_g logits.
The model gradients are then averaged over all devices as in ordinary data parallelism (that
is what differentiating the mean over groups gives). Per device it moves (G - 1) * b * D
embeddings per tensor instead of (P - 1) * b * D, and keeps b x B_g logits instead of b x B.
With G = P it is the all-gather loss exactly (the same program).
"""

from vljax.losses.dense import dense_sharded_loss


def grouped_loss(zimg, ztxt, scale, bias, *, kind, mesh, batch_axes, group_size):
    return dense_sharded_loss(zimg, ztxt, scale, bias, kind=kind, mesh=mesh,
                              batch_axes=batch_axes, group_size=group_size)  # fmt: skip
