"""Evaluation of frozen encoders: retrieval, classification, few-shot, report.

Nothing here imports pybullet: benchmark images are rendered once (by
``embodied.collect.benchmark``) and read from disk.
"""
