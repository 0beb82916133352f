import numpy as np
import pytest

from embodied.eval.bootstrap import ClusterBootstrap


def clustered_sample(rng, clusters=40, per=6, p=0.3, spread=0.15):
    """Binary outcomes whose success rate varies by cluster around a known population mean p."""
    rates = np.clip(rng.normal(p, spread, clusters), 0.0, 1.0)
    values = (rng.random((clusters, per)) < rates[:, None]).astype(float).ravel()
    return values, np.repeat(np.arange(clusters), per)


def test_interval_covers_the_true_value_in_at_least_90_percent_of_repeats():
    rng = np.random.default_rng(0)
    # the true mean of clip(N(0.3, 0.15), 0, 1), by a very large sample
    truth = np.clip(np.random.default_rng(1).normal(0.3, 0.15, 2_000_000), 0, 1).mean()
    covered = 0
    repeats = 200
    for r in range(repeats):
        values, clusters = clustered_sample(rng)
        iv = ClusterBootstrap(clusters, draws=500, seed=r).interval(values)
        covered += iv.lo <= truth <= iv.hi
    assert covered / repeats >= 0.90


def test_resampling_clusters_is_wider_than_resampling_queries_when_clusters_correlate():
    rng = np.random.default_rng(3)
    values, clusters = clustered_sample(rng, spread=0.3)
    clustered = ClusterBootstrap(clusters, draws=1000).interval(values)
    naive = ClusterBootstrap(np.arange(len(values)), draws=1000).interval(values)
    assert clustered.hi - clustered.lo > 1.3 * (naive.hi - naive.lo)


def test_paired_difference_sees_a_small_consistent_gain_that_unpaired_intervals_hide():
    rng = np.random.default_rng(4)
    a, clusters = clustered_sample(rng, clusters=60, per=5, p=0.5, spread=0.3)
    b = a.copy()
    flip = np.flatnonzero(b == 1)[::12]  # b loses a few of a's hits
    b[flip] = 0
    boot = ClusterBootstrap(clusters, draws=1000)
    ia, ib, d = boot.interval(a), boot.interval(b), boot.difference(a, b)
    assert ia.lo < ib.hi  # the two intervals overlap ...
    assert d.excludes_zero() and d.value > 0  # ... but the paired difference is beyond noise
    assert not boot.difference(a, a).excludes_zero()


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="clusters of shape"):
        ClusterBootstrap(np.zeros((0,)))
    with pytest.raises(ValueError, match="values of shape"):
        ClusterBootstrap(np.arange(4)).interval(np.zeros(3))
    with pytest.raises(ValueError, match="level = 1.5"):
        ClusterBootstrap(np.arange(4), level=1.5)
