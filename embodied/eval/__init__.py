"""Evaluation of frozen encoders: image sets, floors, ceiling, metrics, intervals, report.

Only :mod:`embodied.eval.render` drives the simulator, and only when a set is not cached yet;
everything else reads images from disk and works on tensors.
"""
