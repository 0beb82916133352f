"""Datasets: episode schema, shard writer / reader, manifest, frame cache, readers.

Nothing here imports pybullet: learners and evaluation read datasets, not simulators.
"""
