"""Exporters: a collected dataset in other tools' formats."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from embodied.data.manifest import load_manifest
from embodied.data.shards import open_shard


def _aligned_infos(g: h5py.Group) -> dict[str, np.ndarray]:
    """Numeric, fixed-shape infos with one row per observation (reset info first), as Minari stores them."""
    out = {}
    for key, ds in g["infos"].items():
        if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "biuf" or key not in g["reset_info"]:
            continue
        first = g["reset_info"][key]
        if first.dtype.kind in "biuf" and first.shape[1:] == ds.shape[1:]:
            out[key.replace("/", ".")] = np.concatenate([first[()], ds[()]])
    return out


def export_minari(root: str | Path, dataset_id: str, out_dir: str | Path | None = None, progress: bool = True) -> Any:
    """Write the dataset at ``root`` as the Minari dataset ``dataset_id`` ("namespace/name-v0").

    Images stay raw uint8 (no JPEG). ``out_dir`` sets MINARI_DATASETS_PATH for the
    export (load it with the same variable set). Returns the ``MinariDataset``.
    """
    try:
        import minari
        from minari.data_collector.episode_buffer import EpisodeBuffer
    except ImportError:
        raise ImportError("Minari export needs the minari extra: pip install 'embodied[minari]'") from None
    import gymnasium as gym

    import embodied  # noqa: F401  (registers the env ids)

    root = Path(root)
    manifest = load_manifest(root)
    if out_dir is not None:
        os.environ["MINARI_DATASETS_PATH"] = str(Path(out_dir).resolve())
    env_id = manifest["config"]["env_id"]
    env = gym.make(env_id, **manifest["config"].get("env_kwargs", {}))
    buffers = []
    for entry in tqdm(manifest["shards"], desc="minari export", unit="shard", disable=not progress):
        with open_shard(root / entry["name"], entry["sha256"], entry["bytes"]) as f:
            for g in f["data"].values():
                buffers.append(
                    EpisodeBuffer(
                        id=int(g.attrs["index"]),
                        seed=int(g.attrs["seed"]),
                        observations={k: g["obs"][k][()] for k in g["obs"]},
                        actions=g["actions"][()],
                        rewards=g["rewards"][()].tolist(),
                        terminations=g["terminated"][()].tolist(),
                        truncations=g["truncated"][()].tolist(),
                        infos=_aligned_infos(g),
                    )
                )
    with warnings.catch_warnings():  # Minari nags about author e-mail / permalinks we do not have
        warnings.filterwarnings("ignore", message=".*(author|code_permalink).*", category=UserWarning)
        dataset = _create(minari, dataset_id, buffers, env, root, manifest)
    env.close()
    return dataset


def _create(minari: Any, dataset_id: str, buffers: list, env: Any, root: Path, manifest: dict) -> Any:
    return minari.create_dataset_from_buffers(
        dataset_id,
        buffers,
        env=env.spec,
        eval_env=env.spec,
        action_space=env.action_space,
        observation_space=env.observation_space,
        algorithm_name=f"embodied scripted policy: {manifest['config'].get('policy')}",
        description=f"Exported from {root} (embodied schema {manifest['schema_version']})",
        data_format="hdf5",
        jpeg_encoding=False,
    )
