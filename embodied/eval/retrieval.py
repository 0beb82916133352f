"""Exact Recall@k by chunked matrix product + top-k (or faiss ``IndexFlatIP`` when asked)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def _check(emb: torch.Tensor, labels: torch.Tensor, ks: Sequence[int]) -> None:
    if emb.ndim != 2:
        raise ValueError(f"embeddings of shape {tuple(emb.shape)}; expected (N, D)")
    if labels.shape != (emb.shape[0],):
        raise ValueError(f"labels of shape {tuple(labels.shape)}; expected ({emb.shape[0]},)")
    if not torch.isfinite(emb).all():
        raise ValueError("embeddings contain NaN or inf")
    if emb.shape[0] < 2:
        raise ValueError(f"{emb.shape[0]} embeddings; retrieval needs at least 2")
    bad = [k for k in ks if not 0 < k < emb.shape[0]]
    if bad:
        raise ValueError(f"k={bad}; expected 0 < k < N={emb.shape[0]}")


BLOCK = 64  # columns per block in :func:`block_topk`
BLOCK_MIN_COLUMNS = 32_768  # below this a plain topk over cache-resident rows is faster


def block_topk(sim: torch.Tensor, k: int, block: int = BLOCK) -> torch.Tensor:
    """Column indices (c, k) of each row's k largest entries of ``sim`` (c, n): exact, like ``topk``.

    The k largest entries of a row lie in the k blocks of ``block`` columns with the largest
    maxima (a block holding one of them has a maximum at least as large, and at most k blocks
    can), so one max-reduction over the row and a topk over k * block candidates replace a
    topk over all n columns: about 2x faster at n = 100k on a CPU.
    """
    c, n = sim.shape
    nb = n // block
    main = sim[:, : nb * block].view(c, nb, block)
    best = main.amax(2).topk(min(k, nb), dim=1).indices  # (c, kb) blocks
    offsets = torch.arange(block, device=sim.device)
    cand = main.gather(1, best[:, :, None].expand(-1, -1, block)).flatten(1)
    cols = (best[:, :, None] * block + offsets).flatten(1)
    if nb * block < n:  # the columns that do not fill a last block are all candidates
        cand = torch.cat([cand, sim[:, nb * block :]], 1)
        cols = torch.cat([cols, torch.arange(nb * block, n, device=sim.device).expand(c, -1)], 1)
    return cols.gather(1, cand.topk(k, dim=1).indices)


# |bf16 dot - exact dot| for unit vectors: inputs rounded to 8 significant bits (2 * 2^-9),
# the product rounded once more (2^-9), fp32 accumulation (~1e-5); with margin
BF16_ERROR = 2.0**-7
BF16_EXTRA = 32  # bf16 candidates beyond k that are re-ranked exactly


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 matrix products beat float32 on ``device`` (AMX / AVX512-BF16 CPUs, CUDA GPUs)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def _topk(sim: torch.Tensor, k: int) -> torch.Tensor:
    n = sim.shape[1]
    return block_topk(sim, k, BLOCK) if n >= BLOCK_MIN_COLUMNS and k < n // BLOCK else sim.topk(k, dim=1).indices


MEMORY = 400 * 2**20  # bytes: the largest (chunk, N) float32 similarity block a search holds at once


def chunk_rows(n: int, memory: int = MEMORY) -> int:
    """Query rows per block so that a (rows, n) float32 similarity block stays within ``memory``
    bytes: 1024 up to n = 100k (smaller blocks stay closer to the cache and were faster than
    4096), 102 at n = 1M; never fewer than 16."""
    return int(max(16, min(1024, memory // (4 * max(n, 1)))))


def topk_neighbours(
    emb: torch.Tensor,
    k: int,
    chunk: int | None = None,
    bf16: bool | None = None,
    rows: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Indices (N, k) of each row's k most cosine-similar other rows (itself excluded).

    Rows are done ``chunk`` at a time (default :func:`chunk_rows`: a block within ``MEMORY``
    bytes whatever N, so 1M embeddings search in the memory of 100k). ``rows`` = (start, stop):
    only those queries, against the whole gallery; returns (stop - start, k).

    bf16 (default: on for large N where :func:`bf16_is_fast`): candidates from a bf16 product
    (2-3x faster on AMX CPUs), the best ``k + 32`` re-ranked in float32. The result stays exact:
    a row whose k-th re-ranked similarity does not beat the best non-candidate's bf16
    similarity by the bf16 error bound is redone in float32.
    """
    z = F.normalize(emb.float(), dim=1)
    n = z.shape[0]
    chunk = chunk or chunk_rows(n)
    first, stop = rows if rows is not None else (0, n)
    m = k + BF16_EXTRA
    if bf16 is None:
        bf16 = n >= BLOCK_MIN_COLUMNS and bf16_is_fast(z.device)
    bf16 = bf16 and m + 1 < n
    zb = z.bfloat16() if bf16 else None
    out = torch.empty(stop - first, k, dtype=torch.long, device=z.device)
    for start in range(first, stop, chunk):
        q = z[start : min(start + chunk, stop)]
        here = torch.arange(q.shape[0], device=z.device)
        at = slice(start - first, start - first + q.shape[0])
        if zb is None:
            out[at] = _exact_topk(q, z, here + start, k)
            continue
        sim = zb[start : start + q.shape[0]] @ zb.T  # (c, N) bf16
        sim[here, here + start] = -float("inf")
        order = _topk(sim, m + 1)  # m candidates, then the best of the rest
        cand = order[:, :m]
        exact = torch.bmm(z[cand], q[:, :, None]).squeeze(2)  # (c, m) float32
        best, pos = exact.topk(k, dim=1)
        out[at] = cand.gather(1, pos)
        outside = sim.gather(1, order[:, m:]).squeeze(1).float()
        unsure = best[:, -1] < outside + BF16_ERROR
        if unsure.any():
            r = here[unsure]
            out[start - first + r] = _exact_topk(q[r], z, r + start, k)
    return out


def _exact_topk(q: torch.Tensor, z: torch.Tensor, self_index: torch.Tensor, k: int) -> torch.Tensor:
    """(c, k) float32 top-k of ``q @ z.T`` with each query's own column ``self_index`` excluded."""
    sim = q @ z.T
    sim[torch.arange(q.shape[0], device=q.device), self_index] = -float("inf")  # not in its own gallery
    return _topk(sim, k)


def topk_neighbours_faiss(emb: torch.Tensor, k: int) -> torch.Tensor:
    """Same as :func:`topk_neighbours` with faiss ``IndexFlatIP`` on the CPU (optional ``faiss`` extra)."""
    try:
        import faiss
    except ImportError:
        raise ImportError("faiss search needs the faiss extra: pip install 'embodied[faiss]'") from None
    z = F.normalize(emb.float(), dim=1).cpu().numpy().astype(np.float32)
    index = faiss.IndexFlatIP(z.shape[1])
    index.add(z)
    _, idx = index.search(z, k + 1)
    n = z.shape[0]
    keep = idx != np.arange(n)[:, None]  # drop the query itself wherever it ranks
    rows = [row[m][:k] for row, m in zip(idx, keep, strict=True)]
    return torch.from_numpy(np.stack(rows)).to(emb.device)


def topk_neighbours_outside(emb: torch.Tensor, groups: torch.Tensor, k: int, chunk: int | None = None) -> torch.Tensor:
    """Indices (N, k) of each row's k most cosine-similar rows of *other* groups (exact, float32).

    groups: (N,) ints; every row sharing the query's group (itself included) is out of its gallery.
    chunk: query rows per block (default :func:`chunk_rows`, bounded memory).
    """
    z = F.normalize(emb.float(), dim=1)
    chunk = chunk or chunk_rows(z.shape[0])
    out = torch.empty(z.shape[0], k, dtype=torch.long, device=z.device)
    for start in range(0, z.shape[0], chunk):
        sim = z[start : start + chunk] @ z.T
        sim.masked_fill_(groups[start : start + chunk, None] == groups[None, :], -float("inf"))
        out[start : start + chunk] = _topk(sim, k)
    return out


def hits_at_k(
    emb: torch.Tensor,
    labels: torch.Tensor | np.ndarray,
    ks: Sequence[int] = (1, 5, 10, 20),
    groups: torch.Tensor | np.ndarray | None = None,
    backend: str = "torch",
    bf16: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-query retrieval outcomes: hits (N, len(ks)) bool, whether a same-label item is among the
    query's k nearest gallery items, and valid (N,) bool, whether the query has any possible hit.

    The gallery of a query is every other item; with ``groups`` (N,) (e.g. instance ids, for
    category retrieval across instances) every item of the query's own group is removed as well.
    Ties in similarity are broken by a fixed random order of the items, not by their index, so a
    constant encoder scores chance rather than whatever the item order favours.
    """
    perm = torch.from_numpy(np.random.default_rng(0).permutation(emb.shape[0])).to(emb.device)
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(len(perm), device=perm.device)
    labels = torch.as_tensor(labels, device=emb.device)
    if groups is not None:
        groups = torch.as_tensor(groups, device=emb.device)[perm] if len(groups) == len(perm) else groups
    hits, valid = _hits_at_k(emb[perm], labels[perm] if len(labels) == len(perm) else labels, ks, groups, backend, bf16)
    return hits[inverse], valid[inverse]


def _hits_at_k(
    emb: torch.Tensor,
    labels: torch.Tensor,
    ks: Sequence[int],
    groups: torch.Tensor | None,
    backend: str,
    bf16: bool | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    ks = [int(k) for k in ks]
    _check(emb, labels, ks)
    if backend not in ("torch", "faiss"):
        raise ValueError(f"backend={backend!r}; expected 'torch' or 'faiss'")
    kmax = max(ks)
    lab = torch.unique(labels, return_inverse=True)[1]
    same_label = torch.bincount(lab)[lab]  # items with the query's label, itself included
    if groups is None:
        nn_idx = topk_neighbours(emb, kmax, bf16=bf16) if backend == "torch" else topk_neighbours_faiss(emb, kmax)
        valid = same_label > 1
    else:
        groups = torch.as_tensor(groups, device=emb.device)
        if groups.shape != labels.shape:
            raise ValueError(f"groups of shape {tuple(groups.shape)}; expected {tuple(labels.shape)}")
        grp = torch.unique(groups, return_inverse=True)[1]
        gallery = emb.shape[0] - torch.bincount(grp).max().item()
        if kmax > gallery:
            raise ValueError(f"k={kmax}; expected k <= the smallest gallery ({gallery} items outside a group)")
        nn_idx = topk_neighbours_outside(emb, grp, kmax)
        pair = lab * (int(grp.max()) + 1) + grp
        same_pair = torch.bincount(pair)[pair]  # items with the query's label in its own group
        valid = same_label - same_pair > 0
    if not valid.any():
        raise ValueError("no label occurs twice in any query's gallery: Recall@k is undefined")
    found = (labels[nn_idx] == labels[:, None]).cummax(1).values  # (N, kmax): a hit within the first j+1
    return found[:, [k - 1 for k in ks]], valid


def recall_at_k(
    emb: torch.Tensor,
    labels: torch.Tensor | np.ndarray,
    ks: Sequence[int] = (1, 5, 10, 20),
    backend: str = "torch",
    bf16: bool | None = None,
    groups: torch.Tensor | np.ndarray | None = None,
) -> dict[int, float]:
    """Recall@k: the share of queries with at least one same-label item among their k nearest others.

    emb: (N, D) embeddings (cosine similarity); labels: (N,) ints. Queries whose label
    occurs only once (no possible hit) are left out, as is usual. bf16: see :func:`topk_neighbours`
    (None: automatic; the answer is the float32 one either way). groups: see :func:`hits_at_k`.
    """
    hits, valid = hits_at_k(emb, labels, ks, groups, backend, bf16)
    return {int(k): hits[valid, i].double().mean().item() for i, k in enumerate(ks)}
