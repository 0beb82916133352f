"""Trunk CNN, heads, losses and augmentations shared by every learner (no simulator imports)."""

from embodied.nn.heads import ConvPool, EmbeddingHead, EquivarianceMaps, GraspHead, PushHead, mlp
from embodied.nn.losses import (
    classification_loss,
    cosine_embedding_loss,
    equivariance_loss,
    grasp_loss,
    nt_xent,
    regression_loss,
    triplet_margin_loss,
)
from embodied.nn.trunk import Preprocess, Trunk, TrunkConfig

__all__ = [
    "ConvPool",
    "EmbeddingHead",
    "EquivarianceMaps",
    "GraspHead",
    "Preprocess",
    "PushHead",
    "Trunk",
    "TrunkConfig",
    "classification_loss",
    "cosine_embedding_loss",
    "equivariance_loss",
    "grasp_loss",
    "mlp",
    "nt_xent",
    "regression_loss",
    "triplet_margin_loss",
]
