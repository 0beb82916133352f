"""Finding an object by example: a scene's trunk map matched against an exemplar's, without labels.

ReachObject with ``goal_image=True`` names the goal by an exemplar: another instance of the goal
category, alone at the centre of the empty table (``goal_rgb``). Whether a trunk's features say
"same category" across instances is then the whole question of recognition, and it can be asked
of a frozen trunk with nothing fitted:

1. the table's features are the exemplar map's border cells (the exemplar sits at the centre, so
   they see only table), subtracted from both maps, leaving what differs from an empty table;
2. the exemplar's prototype is its remaining map averaged over cells, each weighted by how far its
   features are from the table's (the object's cells, without needing its mask);
3. every scene cell scores the cosine between its remaining features and the prototype. A cell
   whose features are close to the table's (the empty table, numerically all but zero there)
   would get a random direction, so its norm is floored at ``NORM_FLOOR`` of the prototype's:
   such a cell scores near 0.

:class:`ExemplarMatch` turns the scores into a keypoint (a softmax over cells with a learned
temperature), the policy's pointer to the goal object; ``embodied.rl.object_probe`` scores the
same map per object, to ask which object the trunk would choose.
"""

from __future__ import annotations

import torch
from torch import nn

NORM_FLOOR = 0.25  # a scene cell's remaining norm, floored at this fraction of the prototype's
TEMPERATURE = 0.03  # initial softmax temperature over cosines: at 0.1 pointers miss by more (5.8 against 3.5 cm)


def expected_xy(attn: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(N, K, h*w) attention over an h x w grid -> (N, 2K): the expected x_1..x_K, then y_1..y_K, in
    [-1, 1] (x to the right, y downwards; cell centres at the ends)."""
    ys, xs = torch.meshgrid(
        torch.linspace(-1.0, 1.0, h, device=attn.device, dtype=attn.dtype),
        torch.linspace(-1.0, 1.0, w, device=attn.device, dtype=attn.dtype),
        indexing="ij",
    )
    return torch.cat([(attn * xs.flatten()).sum(-1), (attn * ys.flatten()).sum(-1)], dim=1)


def match_scores(scene_map: torch.Tensor, exemplar_map: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) scene and exemplar maps -> (N, h, w) cosines in [-1, 1]: how like the exemplar each
    scene cell is, the table's features taken out of both. Needs h, w >= 3 (a border ring and an inside)."""
    if scene_map.shape != exemplar_map.shape or scene_map.dim() != 4:
        raise ValueError(
            f"scene map {tuple(scene_map.shape)} and exemplar map {tuple(exemplar_map.shape)}; "
            "expected two (N, C, h, w) maps of one shape"
        )
    h, w = scene_map.shape[-2:]
    if h < 3 or w < 3:
        raise ValueError(f"maps of {h}x{w} cells; expected at least 3x3 (the table is read off the border ring)")
    ring = torch.ones(h, w, dtype=torch.bool, device=scene_map.device)
    ring[1:-1, 1:-1] = False
    table = exemplar_map[..., ring].mean(-1)[..., None, None]  # (N, C, 1, 1)
    dev = exemplar_map - table
    weight = dev.norm(dim=1, keepdim=True)  # (N, 1, h, w): the exemplar object's cells weigh most
    proto = (dev * weight).sum((2, 3)) / weight.sum((2, 3)).clamp_min(1e-12)  # (N, C)
    rest = scene_map - table
    p_norm = proto.norm(dim=1).clamp_min(1e-12)  # (N,)
    dot = torch.einsum("nchw,nc->nhw", rest, proto)
    norm = torch.maximum(rest.norm(dim=1), NORM_FLOOR * p_norm[:, None, None])
    return dot / (norm * p_norm[:, None, None])


class ExemplarMatch(nn.Module):
    """A keypoint at the scene cells most like the exemplar: (N, C, h, w) maps -> (N, 3).

    Output: x, y in [-1, 1] (x to the right, y downwards, as :class:`SpatialSoftmax`'s), the expected
    position under a softmax of :func:`match_scores` over cells (temperature learned, from
    ``TEMPERATURE``), and the best cell's score, which says how sure the match is. The matching itself
    has no weights: what it finds is what the trunk's features already say.
    """

    def __init__(self) -> None:
        super().__init__()
        self.log_temperature = nn.Parameter(torch.tensor(TEMPERATURE).log())

    def forward(self, scene_map: torch.Tensor, exemplar_map: torch.Tensor) -> torch.Tensor:
        scores = match_scores(scene_map, exemplar_map).flatten(1)  # (N, h*w)
        attn = (scores / self.log_temperature.exp()).softmax(-1)
        point = expected_xy(attn[:, None], *scene_map.shape[-2:])
        return torch.cat([point, scores.amax(-1, keepdim=True)], dim=1)


__all__ = ["NORM_FLOOR", "ExemplarMatch", "expected_xy", "match_scores"]
