import numpy as np
import pytest
import torch

from embodied.eval.retrieval import recall_at_k


def brute_force_recall(emb, labels, k):
    z = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = z @ z.T
    np.fill_diagonal(sim, -np.inf)
    hits = []
    for i in range(len(z)):
        if (labels == labels[i]).sum() < 2:
            continue
        order = np.argsort(-sim[i], kind="stable")[:k]
        hits.append(np.any(labels[order] == labels[i]))
    return float(np.mean(hits))


@pytest.mark.parametrize("seed", range(3))
def test_recall_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(300, 16)).astype(np.float32)
    labels = rng.integers(0, 25, size=300)
    labels[0] = 99  # a singleton query is left out
    got = recall_at_k(torch.from_numpy(emb), torch.from_numpy(labels), ks=(1, 5, 10, 20))
    for k in (1, 5, 10, 20):
        assert got[k] == pytest.approx(brute_force_recall(emb, labels, k), abs=1e-9)


def test_chunking_does_not_change_the_answer():
    from embodied.eval.retrieval import topk_neighbours

    emb = torch.randn(257, 8, generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(topk_neighbours(emb, 5, chunk=7).numpy(), topk_neighbours(emb, 5).numpy())


@pytest.mark.parametrize("n, k, block", [(1000, 20, 64), (1000, 15, 64), (130, 2, 64), (64, 1, 64), (1000, 20, 7)])
def test_block_topk_is_exact(n, k, block):
    from embodied.eval.retrieval import block_topk

    sim = torch.randn(9, n, generator=torch.Generator().manual_seed(n + k))
    expected = sim.topk(k, dim=1).indices
    np.testing.assert_array_equal(block_topk(sim, k, block).numpy(), expected.numpy())


@pytest.mark.parametrize("seed", range(2))
def test_block_path_matches_brute_force(seed, monkeypatch):
    import embodied.eval.retrieval as retrieval

    monkeypatch.setattr(retrieval, "BLOCK_MIN_COLUMNS", 100)  # the path 100k-row sets take
    monkeypatch.setattr(retrieval, "BLOCK", 8)
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(400, 16)).astype(np.float32)
    labels = rng.integers(0, 30, size=400)
    got = recall_at_k(torch.from_numpy(emb), torch.from_numpy(labels), ks=(1, 5, 20))
    for k in (1, 5, 20):
        assert got[k] == pytest.approx(brute_force_recall(emb, labels, k), abs=1e-9)


@pytest.mark.parametrize("error_bound", [None, 10.0])  # the bound as shipped; one that sends every row to float32
def test_bf16_candidates_give_the_float32_answer(error_bound, monkeypatch):
    import embodied.eval.retrieval as retrieval

    if error_bound is not None:
        monkeypatch.setattr(retrieval, "BF16_ERROR", error_bound)
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(40, 16, generator=g)
    emb = centres[torch.randint(0, 40, (1500,), generator=g)] + 0.4 * torch.randn(1500, 16, generator=g)
    exact = retrieval.topk_neighbours(emb, 20, chunk=200, bf16=False)
    fast = retrieval.topk_neighbours(emb, 20, chunk=200, bf16=True)
    np.testing.assert_array_equal(fast.numpy(), exact.numpy())


def test_bf16_bound_is_not_vacuous():
    """bf16 products really are off (so the check matters), by no more than the bound it assumes."""
    g = torch.Generator().manual_seed(1)
    z = torch.nn.functional.normalize(torch.randn(4000, 8, generator=g), dim=1)
    approx = (z[:50].bfloat16() @ z.bfloat16().T).float()
    assert 0 < (approx - z[:50] @ z.T).abs().max() <= 2.0**-7  # the error exists and stays within the bound


def test_perfect_and_hand_computed_cases():
    emb = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert recall_at_k(emb, torch.tensor([0, 0, 1, 1]), ks=(1,))[1] == 1.0
    # nearest of 0 is 1 (label 1: miss), nearest of 1 is 0 (miss), 2<->3 miss: all wrong at k=1
    assert recall_at_k(emb, torch.tensor([0, 1, 0, 1]), ks=(1,))[1] == 0.0
    # top-2: 0 -> {1, 3} miss; 1 -> {0, 3} hit; 2 -> {3, 1} miss; 3 -> {2, 1} hit
    assert recall_at_k(emb, torch.tensor([0, 1, 0, 1]), ks=(2, 3)) == {2: 0.5, 3: 1.0}


def test_faiss_backend_agrees():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    emb = torch.from_numpy(rng.normal(size=(200, 8)).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 10, 200))
    a = recall_at_k(emb, labels, backend="torch")
    b = recall_at_k(emb, labels, backend="faiss")
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=0.02)  # ties may order differently


@pytest.mark.parametrize(
    "emb, labels, ks, match",
    [
        (torch.zeros(5), torch.zeros(5), (1,), "expected \\(N, D\\)"),
        (torch.randn(5, 2), torch.zeros(4), (1,), "labels of shape"),
        (torch.full((5, 2), float("nan")), torch.zeros(5), (1,), "NaN"),
        (torch.randn(5, 2), torch.zeros(5), (5,), "k=\\[5\\]"),
        (torch.randn(5, 2), torch.arange(5), (1,), "no label occurs twice"),
    ],
)
def test_bad_input(emb, labels, ks, match):
    with pytest.raises(ValueError, match=match):
        recall_at_k(emb, labels, ks=ks)


def test_a_million_embeddings_search_in_blocks_of_bounded_memory():
    from embodied.eval.retrieval import MEMORY, chunk_rows, topk_neighbours

    assert chunk_rows(1_000) == chunk_rows(100_000) == 1024
    assert 4 * chunk_rows(1_000_000) * 1_000_000 <= MEMORY
    assert chunk_rows(10**9) == 16
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(1_000_000, 8, generator=g)
    q = (999_900, 1_000_000)  # the last 100 queries against the whole 1M gallery
    got = topk_neighbours(emb, 5, rows=q, bf16=False)
    z = torch.nn.functional.normalize(emb, dim=1)
    sim = z[q[0] :] @ z.T
    sim[torch.arange(100), torch.arange(*q)] = -float("inf")
    ref = sim.topk(5, dim=1)
    assert torch.equal(sim.gather(1, got), ref.values)  # same similarities (ties may swap indices)
    assert got.shape == (100, 5) and not (got == torch.arange(*q)[:, None]).any()


def test_rows_give_the_same_neighbours_as_the_full_search():
    from embodied.eval.retrieval import topk_neighbours

    emb = torch.randn(3000, 16, generator=torch.Generator().manual_seed(1))
    full = topk_neighbours(emb, 10, chunk=256)
    assert torch.equal(topk_neighbours(emb, 10, chunk=100, rows=(1000, 2100)), full[1000:2100])
