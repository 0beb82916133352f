"""Speed and success numbers of the tabletop envs (Grasp, Push, Poke, Look).

Measures, per process at the preset's 128 px observation: attempts/s of grasp,
push and poke (reset + one attempt, the informed policy), views/s of Look; where
the time of a grasp attempt goes (physics steps, rendering, IK, the rest =
Python and other PyBullet calls); grasp throughput of 2 processes against 1; and
the grasp success rate of the uniform and the informed policy on the train split.

    python scripts/bench_tabletop.py [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from typing import Any

import numpy as np
import pybullet as p

ENVS = {
    "grasp": "embodied.envs.grasp:GraspEnv",
    "push": "embodied.envs.push:PushEnv",
    "poke": "embodied.envs.poke:PokeEnv",
}


def _make(kind: str, **kwargs: Any) -> Any:
    import importlib

    module, cls = ENVS[kind].split(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)


def _policy(name: str, env: Any) -> Any:
    from embodied.collect.tabletop_policies import InformedPolicy, UniformPolicy

    return (InformedPolicy if name == "informed" else UniformPolicy)(env.action_space)


def attempts(kind: str, n: int, policy: str = "informed", seed0: int = 0) -> tuple[float, float]:
    """(attempts per second, mean reward) of ``n`` reset + step episodes after one warm-up episode."""
    env = _make(kind, size=128)
    pol = _policy(policy, env)
    obs, info = env.reset(seed=seed0 + 10_000)
    env.step(pol(obs, info))
    rewards = []
    t0 = time.perf_counter()
    for i in range(n):
        pol.reset(seed0 + i)
        obs, info = env.reset(seed=seed0 + i)
        rewards.append(env.step(pol(obs, info))[1])
    dt = time.perf_counter() - t0
    env.close()
    return n / dt, float(np.mean(rewards))


def look_views(n_episodes: int) -> float:
    """Observations per second of Look-v0 (8 views per episode, reset included)."""
    from embodied.envs.look import LookEnv

    env = LookEnv(size=128)
    env.reset(seed=0)
    views = 0
    t0 = time.perf_counter()
    for ep in range(n_episodes):
        env.reset(seed=ep)
        views += 1
        for k in range(1, env.views):
            env.step(k)
            views += 1
    dt = time.perf_counter() - t0
    env.close()
    return views / dt


def grasp_time_split(n: int) -> dict[str, float]:
    """Shares of a grasp attempt's wall time in physics, rendering, IK and the rest."""
    env = _make("grasp", size=128)
    pol = _policy("informed", env)
    spent = {"physics": 0.0, "render": 0.0, "ik": 0.0}
    proxy = env.sim.p

    def timed(key: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - t

        return wrapper

    # the client proxy caches bound functions in its __dict__; the camera calls pybullet directly
    proxy.__dict__["stepSimulation"] = timed("physics", proxy.stepSimulation)
    proxy.__dict__["calculateInverseKinematics"] = timed("ik", proxy.calculateInverseKinematics)
    original = p.getCameraImage
    p.getCameraImage = timed("render", original)
    try:
        obs, info = env.reset(seed=99_999)
        env.step(pol(obs, info))
        spent.update(physics=0.0, render=0.0, ik=0.0)
        t0 = time.perf_counter()
        for i in range(n):
            pol.reset(i)
            obs, info = env.reset(seed=i)
            env.step(pol(obs, info))
        total = time.perf_counter() - t0
    finally:
        p.getCameraImage = original
        env.close()
    shares = {k: v / total for k, v in spent.items()}
    shares["python"] = 1.0 - sum(shares.values())
    return shares


def _worker(args: tuple[int, int]) -> float:
    n, seed0 = args
    return attempts("grasp", n, seed0=seed0)[0]


def scaling(n: int, processes: int = 2) -> tuple[float, float]:
    """(total grasp attempts/s of ``processes`` concurrent processes, one process alone in the same pool)."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(processes) as pool:
        single = pool.map(_worker, [(n, 0)])[0]
        rates = pool.map(_worker, [(n, 1000 * (k + 1)) for k in range(processes)])
    return float(sum(rates)), float(single)


def run(quick: bool = False) -> dict[str, float]:
    """All numbers as a flat dict (rates per second, shares in [0, 1], success rates in [0, 1])."""
    n = 20 if quick else 100
    n_success = 40 if quick else 200
    out: dict[str, float] = {}
    for kind in ("grasp", "push", "poke"):
        out[f"{kind}_attempts_per_s"] = attempts(kind, n)[0]
    out["look_views_per_s"] = look_views(3 if quick else 15)
    for key, share in grasp_time_split(n).items():
        out[f"grasp_share_{key}"] = share
    two, one = scaling(n)
    out["grasp_attempts_per_s_1proc"] = one
    out["grasp_attempts_per_s_2proc"] = two
    out["grasp_scaling_2proc"] = two / one
    out["grasp_success_informed"] = attempts("grasp", n_success, "informed", seed0=50_000)[1]
    out["grasp_success_random"] = attempts("grasp", n_success, "random", seed0=50_000)[1]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer attempts (a rough number in ~20 s)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    results = run(quick=args.quick)
    width = max(map(len, results))
    print(f"{'metric':<{width}}  value")
    for key, value in results.items():
        print(f"{key:<{width}}  {value:8.3f}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
