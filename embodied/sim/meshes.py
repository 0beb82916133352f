"""Mesh geometry of the object library: surfaces of revolution, cuboids, vessel profiles, the
procedural shape of each generated category, OBJ parsing and vertex-clustering decimation.

Pure functions of their arguments (and of the random generator passed in), so an instance's
mesh bytes depend only on ``(category, index)`` (see ``embodied.sim.objects``). Lengths in metres.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pybullet as p

SEGMENTS = 20  # vertices around a surface of revolution


def orient_outward(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Flip all faces if the closed mesh's signed volume is negative (normals pointing in)."""
    return faces[:, ::-1].copy() if signed_volume(vertices, faces) < 0 else faces


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def revolve(profile: np.ndarray, segments: int = SEGMENTS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Surface of revolution about z of a (K, 2) polyline of (radius, z) points.

    Rings with radius 0 close the surface at the axis. Returns vertices (V, 3), faces (F, 3), uvs (V, 2)
    (u around, v along the profile's arc length); one seam column of vertices is duplicated for the UVs.
    """
    profile = np.asarray(profile, dtype=np.float64)
    k = len(profile)
    theta = np.linspace(0.0, 2.0 * np.pi, segments + 1)
    r, z = profile[:, 0:1], profile[:, 1:2]
    verts = np.stack([r * np.cos(theta), r * np.sin(theta), np.broadcast_to(z, (k, segments + 1))], axis=-1)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(profile, axis=0), axis=1))])
    uu, vv = np.meshgrid(theta / (2.0 * np.pi), arc / max(arc[-1], 1e-9))
    idx = np.arange(k * (segments + 1)).reshape(k, segments + 1)
    faces = []
    for i in range(k - 1):
        on_axis_a, on_axis_b = profile[i, 0] <= 1e-9, profile[i + 1, 0] <= 1e-9
        for j in range(segments):
            a0, a1, b0, b1 = idx[i, j], idx[i, j + 1], idx[i + 1, j], idx[i + 1, j + 1]
            if not on_axis_a:
                faces.append((a0, a1, b1))
            if not on_axis_b:
                faces.append((a0, b1, b0))
    v = verts.reshape(-1, 3)
    f = np.asarray(faces, dtype=np.int64)
    return v, orient_outward(v, f), np.stack([uu.ravel(), vv.ravel()], axis=1)


def cuboid(size: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Box of full size (x, y, z) centred at 0, 4 vertices per face so every face gets the whole texture."""
    hx, hy, hz = np.asarray(size, dtype=np.float64) / 2.0
    verts, uvs, faces = [], [], []
    # each face: centre axis, sign; corners in CCW order seen from outside
    for axis in range(3):
        for sign in (1.0, -1.0):
            u_axis, v_axis = [a for a in range(3) if a != axis]
            corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
            base = len(verts)
            for cu, cv in corners:
                pt = np.zeros(3)
                pt[axis] = sign
                pt[u_axis], pt[v_axis] = cu, cv
                verts.append(pt * (hx, hy, hz))
                uvs.append(((cu + 1) / 2, (cv + 1) / 2))
            faces += [(base, base + 1, base + 2), (base, base + 2, base + 3)]
    v, f = np.asarray(verts), np.asarray(faces, dtype=np.int64)
    # orient each quad outward individually (a box is convex: normal must point away from the centre)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    flip = np.einsum("ij,ij->i", np.cross(b - a, c - a), (a + b + c) / 3.0) < 0
    f[flip] = f[flip][:, ::-1]
    return v, f, np.asarray(uvs)


def shell(outer: list[tuple[float, float]], thickness: float, bottom: float) -> np.ndarray:
    """Profile of an open-top vessel: axis -> outer wall up to the rim -> inner wall down -> axis.

    outer: (r, z) points from the bottom edge to the rim, z increasing; thickness: wall (m); bottom: floor (m).
    """
    pts = [(0.0, 0.0), *outer]
    inner = [(max(r - thickness, 0.002), max(z, bottom)) for r, z in reversed(outer)]
    rim_r, rim_z = outer[-1]
    pts += [(max(rim_r - thickness, 0.002), rim_z)] + inner[1:-1]
    pts += [(max(outer[0][0] - thickness, 0.002), bottom), (0.0, bottom)]
    return np.asarray(pts)


def generate(category: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices (metres), faces and UVs of a procedural instance of ``category`` (not yet centred)."""
    u = rng.uniform
    if category == "cup":
        h, rb = u(0.07, 0.12), u(0.024, 0.034)
        rt, bulge, t = rb * u(1.0, 1.35), u(-0.004, 0.006), u(0.003, 0.006)
        zs = np.linspace(0.0, h, 6)
        outer = [(rb + (rt - rb) * s + bulge * math.sin(math.pi * s), z) for s, z in zip(zs / h, zs, strict=True)]
        return revolve(shell(outer, t, t * 1.5))
    if category == "bowl":
        rr, h = u(0.05, 0.075), u(0.035, 0.065)
        rb, pw, t = rr * u(0.35, 0.55), u(0.4, 0.8), u(0.004, 0.007)
        zs = h * np.linspace(0.0, 1.0, 6)
        outer = [(rb + (rr - rb) * (z / h) ** pw, z) for z in zs]
        return revolve(shell(outer, t, t * 1.5))
    if category == "bottle":
        h, rb = u(0.15, 0.22), u(0.024, 0.036)
        hb, rn, sh = h * u(0.5, 0.65), u(0.009, 0.014), u(0.03, 0.05)
        prof = [(0.0, 0.0), (rb * 0.92, 0.0), (rb, 0.006), (rb, hb)]
        for s in np.linspace(0.25, 1.0, 4):
            prof.append((rn + (rb - rn) * math.cos(s * math.pi / 2), hb + sh * s))
        prof += [(rn, h - 0.01), (rn * 1.15, h - 0.008), (rn * 1.15, h), (0.0, h)]
        return revolve(np.asarray(prof))
    if category == "vase":
        h, r0 = u(0.12, 0.2), u(0.022, 0.032)
        amp, freq, phase, t = u(0.008, 0.018), u(0.7, 1.4), u(0.0, math.pi), u(0.003, 0.005)
        zs = np.linspace(0.0, h, 7)
        outer = [(r0 + amp * math.sin(phase + freq * math.pi * z / h), z) for z in zs]
        return revolve(shell(outer, t, t * 2.0))
    if category == "plate":
        rr, h = u(0.07, 0.1), u(0.014, 0.024)
        rb, rim, dip = rr * u(0.55, 0.7), u(0.01, 0.02), h * u(0.3, 0.5)
        prof = [(0.0, 0.0), (rb, 0.0), (rr, h), (rr - 0.004, h), (rr - rim, h - dip * 0.6), (rb, dip), (0.0, dip)]
        return revolve(np.asarray(prof))
    if category == "can":
        h, r = u(0.06, 0.14), u(0.025, 0.038)
        bev = u(0.002, 0.005)
        prof = [(0.0, 0.0), (r - bev, 0.0), (r, bev), (r, h - bev), (r - bev, h), (0.0, h)]
        return revolve(np.asarray(prof))
    if category == "ball":
        r, squash = u(0.028, 0.048), u(0.9, 1.0)
        a = np.linspace(-math.pi / 2, math.pi / 2, 11)
        return revolve(np.stack([r * np.cos(a), r * squash * np.sin(a)], axis=1), segments=16)
    if category == "torus":
        rmin, rmaj = u(0.009, 0.016), u(0.03, 0.045)
        a = np.linspace(0.0, 2.0 * math.pi, 11)
        return revolve(np.stack([rmaj + rmin * np.cos(a), rmin * np.sin(a)], axis=1))
    if category == "box":
        size = np.array([u(0.04, 0.08), u(0.04, 0.12), u(0.04, 0.12)])
        return cuboid(size)
    if category == "brick":
        size = np.array([u(0.09, 0.16), u(0.045, 0.065), u(0.03, 0.055)])
        return cuboid(size)
    raise AssertionError(category)


def parse_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Positions and fan-triangulated faces of a Wavefront OBJ (all objects merged)."""
    verts, faces = [], []
    for line in path.read_text().splitlines():
        if line.startswith("v "):
            verts.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("f "):
            ids = [int(tok.split("/")[0]) for tok in line.split()[1:]]
            ids = [i - 1 if i > 0 else len(verts) + i for i in ids]
            faces += [(ids[0], ids[m], ids[m + 1]) for m in range(1, len(ids) - 1)]
    return np.asarray(verts, dtype=np.float64), np.asarray(faces, dtype=np.int64)


def euler_matrix(rx: float, ry: float, rz: float) -> np.ndarray:
    return np.asarray(p.getMatrixFromQuaternion(p.getQuaternionFromEuler((rx, ry, rz)))).reshape(3, 3)


def decimate(v: np.ndarray, f: np.ndarray, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertex clustering of a mesh centred in the unit cube: vertices in one cell of a ``cells``^3
    grid merge into their mean, collapsed and duplicate triangles go; the result is re-centred and
    scaled back to longest side 1."""
    cell = np.floor((v + 0.5) * cells).astype(np.int64)
    _, first, inverse = np.unique(cell, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    reps = np.zeros((len(first), 3))
    np.add.at(reps, inverse, v)
    reps /= np.bincount(inverse, minlength=len(first))[:, None]
    f = inverse[f]
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
    f = np.unique(f, axis=0)  # drop duplicate triangles (same vertex order)
    used = np.unique(f)
    remap = np.full(len(reps), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    v, f = reps[used], remap[f]
    lo, hi = v.min(0), v.max(0)
    return (v - (lo + hi) / 2.0) / float((hi - lo).max()), f
