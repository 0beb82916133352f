"""embodied: a robot acts in order to see.

Importing the package registers the Gymnasium ids of every preset under ``envs/``
(Gymnasium 1.x loads no plugin entry points).
"""

from embodied import envs as envs  # noqa: F401  (registers ids)
from embodied.encoder import load_encoder

__all__ = ["load_encoder"]

__version__ = "0.1.0"
