"""embodied: a robot acts in order to see.

Importing the package registers the Gymnasium ids of every preset under ``envs/``
(Gymnasium 1.x loads no plugin entry points).
"""

from typing import Any

from embodied import envs as envs  # noqa: F401  (registers ids)

__all__ = ["load_encoder"]


def __getattr__(name: str) -> Any:
    # torch only when asked for: collection workers and env subprocesses import this package,
    # and torch would cost each of them ~1-2 s of start-up and ~150 MB
    if name == "load_encoder":
        from embodied.encoder import load_encoder

        return load_encoder
    raise AttributeError(f"module 'embodied' has no attribute {name!r}")


__version__ = "0.1.0"
