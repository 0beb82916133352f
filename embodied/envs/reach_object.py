"""``embodied/ReachObject-v0``: touch the one tabletop object of a named category, among distractors.

Reach (``embodied/reach.py``) only needs the target's position, which a spatial-softmax head on
any trunk, untrained included, supplies. Here the table holds ``n_objects`` library objects of
distinct categories at random places and yaws, and the observation names the goal *category*
(a one-hot over ``categories``). The goal object's place is drawn independently of its category,
so where the objects are says nothing about which one to touch: only recognising the categories
in the pixels does. Touching a wrong object ends the episode. Evaluation uses held-out instances
(``split="heldout"``), so recognising means recognising a category, not memorising instances.

Same world, camera and conventions as Reach: metres, z up, table top at z = 0, a fixed camera
above the origin looking straight down (image up = world +x, image left = world +y; ``camera_elevation``
tilts it towards the robot's head-camera view, keeping image up towards +x), a
kinematic fingertip sphere (no physics) moved by planar deltas, the table not drawn (its colour
fills the background pixels). Objects are static and the world is never stepped; an episode
removes the old objects (newest first) and spawns the new ones (memoized shapes), so body ids
repeat and episodes are history independent.

:class:`ReachObjectOracle` is the scripted oracle: it reads the goal object's position (and the
distractors') from ``info`` and slides round the distractors to the goal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import pybullet as p
from gymnasium import spaces

from embodied.envs.reach import (
    CAMERA_FOV,
    CAMERA_HEIGHT,
    FINGER_RADIUS,
    FINGER_RANGE,
    FINGER_RGBA,
    TABLE_RGB,
    TARGET_RANGE,
    check_pixel_task,
)
from embodied.envs.validate import check_action, check_categories, check_number, check_positive_int
from embodied.sim import BulletSim, Camera, look_at, objects

# Free-hue categories (colour says nothing about the category) that look different from above:
# a shaded sphere, a ring with a hole, a disc with a handle, an elongated irregular body.
DEFAULT_CATEGORIES = ("ball", "torus", "mug", "bunny")
OBJECT_GAP = 0.02  # m between two objects' footprint circles (half their AABB diagonals)
MIN_SEPARATION = 0.12  # m between object centres at least: touch discs far apart, room to pass between
MIN_START_DISTANCE = 0.1  # m between the fingertip's start and every object centre (when it fits)
LAYOUT_TRIES = 100
# flat colours of the categories (by index) in the category_colours diagnostic variant; none is the fingertip red
CATEGORY_RGB = np.array(
    [(245, 245, 245), (40, 200, 60), (40, 80, 230), (240, 220, 40), (200, 60, 220), (40, 220, 220)], np.uint8
)


def camera_view(elevation: float) -> list[float]:
    """The view matrix of the camera CAMERA_HEIGHT m from the table's centre, ``elevation`` degrees above
    the table on the -x side (90: straight down), image up towards world +x in both cases."""
    if elevation >= 90.0:
        return look_at((0.0, 0.0, CAMERA_HEIGHT), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0))
    e = math.radians(elevation)
    return look_at((-CAMERA_HEIGHT * math.cos(e), 0.0, CAMERA_HEIGHT * math.sin(e)), (0.0, 0.0, 0.0))


class ReachObjectEnv(gym.Env):
    """Touch the tabletop object of the goal category with a kinematic fingertip, from pixels.

    ``n_objects`` library objects of distinct categories (drawn from ``categories``) lie at random
    places and yaws on a table; the observation names one of their categories as the goal. A
    fingertip marker (a red sphere, moved kinematically, no physics) starts away from them; a fixed
    camera looks straight down. The goal object's position is uniform and independent of its
    category and of the distractors', so position alone cannot solve the task: a policy that
    localises every object but cannot tell categories apart touches the right one with probability
    1 / ``n_objects`` (1/3 with the preset), since touching any object ends the episode. Only
    recognising the goal category in the image, on held-out instances at evaluation, solves it.

    ## Action Space

    ``Box(-1, 1, (2,), float32)``: the fingertip's planar move (dx, dy) in units of ``step_size``
    m (world x, y; image up is world +x, image left world +y); the fingertip stays within +-0.22 m.

    ## Observation Space

    ``Dict(rgb=Box(0, 255, (size, size, 3), uint8), proprio=Box(-1, 1, (4,), float32),
    goal=Box(0, 1, (K,), float32))``: the camera's view (top-down by default); the fingertip's position (x, y) / 0.22 m
    and the last action executed (clipped to [-1, 1]; zeros at reset), as in Reach; and the goal
    category as a one-hot over the env's K = ``len(categories)`` categories (in the order given).
    Nothing but the image reveals where any object is, or which is which.

    With ``goal_image=True`` the observation adds ``goal_rgb=Box(0, 255, (size, size, 3), uint8)``:
    the goal named by example, the same camera's view of *another* instance of the goal category
    (of the same split), alone at the table's centre at a random yaw, without the fingertip; fixed
    for the episode. A policy can then find the goal object by matching the exemplar's features
    against the scene's, so how well a trunk's features say "same category" decides what it can do.

    ## Rewards

    ``distance_weight * (d_before - d_after)`` per step, d the fingertip's distance (m) to the goal
    object's centre in the table plane (progress, a potential-based shaping: it sums to
    ``distance_weight * (d_start - d_end)``); plus ``success_bonus`` on the step that touches the
    goal object; minus ``wrong_penalty`` on the step that touches another object. Progress
    shaping rather than Reach's ``-distance_weight * d``: with a cost per step, ending the episode
    early on the nearest distractor would pay.

    ## Starting State

    ``n_objects`` distinct categories drawn from ``categories``, one instance of the split each;
    centres uniform in +-0.16 m, at least 0.12 m apart and their footprints (half AABB diagonals)
    0.02 m apart; uniform yaws; the goal uniform among the placed objects; the fingertip uniform
    in +-0.22 m, at least 0.1 m from every object centre (the farthest of 100 draws when none is);
    all drawn from ``np_random``.

    ## Episode End

    Terminated when the fingertip comes within ``touch_radius`` m (table plane) of an object's
    centre: a success for the goal object, a failure (``wrong``) for any other. The registered id
    truncates at ``max_episode_steps`` of its preset (``envs/reach_object.toml``: 50).

    ## Info

    The same keys and shapes after reset and every step (n = ``n_objects``)::

        success             bool            the fingertip touched the goal object
        wrong               bool            it touched another object (the episode ends)
        distance            float           m, to the goal object's centre, table plane
        fingertip           (2,) float32    m, (x, y)
        target              (2,) float32    m, (x, y) of the goal object's centre
        target_slot         int             index of the goal object in objects / instances
        target_instance     int             library uid of the goal object
        target_category     str
        target_category_id  int             library category id
        goal                int             index of the goal category in ``categories``
        objects             (n, 2) float32  m, every object's centre
        instances           (n,) int64      library uids
        category_ids        (n,) int64      library category ids
        category_index      (n,) int64      each object's category as its index in ``categories`` (as goal)
        exemplar_instance   int             library uid of the ``goal_rgb`` exemplar (only with goal_image)

    Learners must not need info.

    ## Arguments

        size: observation width = height in pixels.
        split: "train" or "heldout" object instances (evaluate on "heldout").
        categories: the K library categories objects and goals are drawn from (distinct, K >= 2;
            default ball, torus, mug, bunny: any hue, distinct shapes from above).
        n_objects: objects per scene, of distinct categories: 2 <= n_objects <= K.
        step_size: metres the fingertip moves per unit of action (per axis).
        touch_radius: metres between fingertip and an object's centre (table plane) that count as a touch.
        distance_weight: reward per metre of progress towards the goal object.
        success_bonus: reward on the step that touches the goal object (the episode then terminates).
        wrong_penalty: reward taken on the step that touches another object (the episode then terminates).
        category_colours: paint every object in its category's flat colour (``CATEGORY_RGB``): a
            diagnostic variant in which recognising the category is trivial, so what is left is the
            control. At most 6 categories.
        goal_image: add ``goal_rgb``, an exemplar of the goal category (see Observation Space).
        camera_elevation: degrees in [45, 90] of the camera above the table, 0.8 m from its centre:
            90 (the default) looks straight down; lower tilts it towards the robot's head camera
            (45-75 deg, the view every learner trains on), from the -x side, image up still world +x.
        render_size: pixels of ``render()`` frames. render_mode: None or "rgb_array".
        renderer: "tiny" or "egl".
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        *,
        size: int = 64,
        split: str = "train",
        categories: Sequence[str] | None = DEFAULT_CATEGORIES,
        n_objects: int = 3,
        step_size: float = 0.03,
        touch_radius: float = 0.04,
        distance_weight: float = 10.0,
        success_bonus: float = 5.0,
        wrong_penalty: float = 5.0,
        category_colours: bool = False,
        goal_image: bool = False,
        camera_elevation: float = 90.0,
        render_size: int = 256,
        render_mode: str | None = None,
        renderer: str = "tiny",
    ) -> None:
        self.size, self.split = check_pixel_task(size, render_size, split, render_mode)
        cats = check_categories(list(objects.CATEGORIES) if categories is None else categories)
        assert cats is not None
        if len(cats) < 2 or len(set(cats)) != len(cats):
            raise ValueError(f"categories={cats!r}; expected at least 2 distinct library categories")
        self.categories = tuple(cats)
        self.n_objects = check_positive_int("n_objects", n_objects)
        if not 2 <= self.n_objects <= len(self.categories):
            raise ValueError(f"n_objects={n_objects!r}; expected an integer in [2, {len(self.categories)}]")
        self.step_size = check_number("step_size", step_size, 0.0, "a finite number of metres > 0")
        self.touch_radius = check_number("touch_radius", touch_radius, 0.0, "a finite number of metres > 0")
        if self.touch_radius >= MIN_SEPARATION / 2:
            raise ValueError(f"touch_radius={touch_radius!r}; expected metres < {MIN_SEPARATION / 2}")
        self.distance_weight, self.success_bonus, self.wrong_penalty = (
            check_number(name, value, 0.0, "a finite number >= 0", strict=False)
            for name, value in (
                ("distance_weight", distance_weight),
                ("success_bonus", success_bonus),
                ("wrong_penalty", wrong_penalty),
            )
        )
        self.pools = [objects.instances(self.split, [c]) for c in self.categories]
        self.render_mode = render_mode
        if not isinstance(category_colours, bool) or (category_colours and len(self.categories) > len(CATEGORY_RGB)):
            raise ValueError(
                f"category_colours={category_colours!r} with {len(self.categories)} categories; "
                f"expected true or false, true for at most {len(CATEGORY_RGB)} categories"
            )
        self.category_colours = category_colours
        if not isinstance(goal_image, bool):
            raise ValueError(f"goal_image={goal_image!r}; expected true or false")
        if goal_image and any(len(pool) < 2 for pool in self.pools):
            raise ValueError(f"goal_image=True needs 2 instances of each category in split {self.split!r}")
        self.goal_image = goal_image
        elevation = check_number("camera_elevation", camera_elevation, 0.0, "degrees in [45, 90]", strict=False)
        if not 45.0 <= elevation <= 90.0:
            raise ValueError(f"camera_elevation={camera_elevation!r}; expected degrees in [45, 90]")
        self.camera_elevation = elevation

        n, k = self.n_objects, len(self.categories)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = spaces.Dict(
            {
                "rgb": spaces.Box(0, 255, shape=(self.size, self.size, 3), dtype=np.uint8),
                "proprio": spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32),
                "goal": spaces.Box(0.0, 1.0, shape=(k,), dtype=np.float32),
            }
            | ({"goal_rgb": spaces.Box(0, 255, shape=(self.size, self.size, 3), dtype=np.uint8)} if goal_image else {})
        )
        big = max(self.size, render_size)
        self.sim = BulletSim(renderer=renderer, width=big, height=big)
        self.view = camera_view(elevation)
        self.camera = Camera(self.size, self.size, fov=CAMERA_FOV, near=0.1, far=2.0)
        self.render_camera = Camera(render_size, render_size, fov=CAMERA_FOV, near=0.1, far=2.0)
        finger = self.sim.create_body(
            "sphere", (0.0, 0.0, FINGER_RADIUS), rgba=FINGER_RGBA, collision=False, radius=FINGER_RADIUS
        )
        self.finger = self.sim.add_body("finger", finger)
        self.specs: list[objects.ObjectSpec] = []
        self.centres = np.zeros((n, 2))
        self.slot = 0  # the goal object's index in specs / centres
        self.goal = 0  # the goal category's index in self.categories
        self.finger_xy = np.zeros(2)
        self.last_action = np.zeros(2, np.float32)
        self._outcome = (False, False)  # (success, wrong) of the last step
        self.exemplar: np.ndarray | None = None  # (size, size, 3) uint8 goal_rgb of the episode
        self.exemplar_uid = -1

    # -- episode -----------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """A new scene, goal and fingertip start: a pure function of the draws from ``np_random``."""
        super().reset(seed=seed)
        rng = self.np_random
        cats = rng.choice(len(self.categories), size=self.n_objects, replace=False)
        specs = [self.pools[int(c)][int(rng.integers(len(self.pools[int(c)])))] for c in cats]
        centres = self._layout(rng, specs)
        yaws = rng.uniform(-math.pi, math.pi, size=self.n_objects)
        slot = int(rng.integers(self.n_objects))
        finger = self._finger_start(rng, centres)
        for i in reversed(range(len(self.specs))):  # newest first: the new ones get the same body ids again
            self.sim.remove_body(f"object{i}")
        if self.goal_image:  # drawn after the scene's draws, so the scene is the same with or without it
            self.exemplar = self._render_exemplar(rng, int(cats[slot]), specs[slot].uid)
        for i, (spec, (x, y), yaw) in enumerate(zip(specs, centres, yaws, strict=True)):
            orn = p.getQuaternionFromEuler((0.0, 0.0, float(yaw)))
            objects.spawn(
                self.sim, spec, (float(x), float(y), spec.extents[2] / 2.0), orn, static=True, name=f"object{i}"
            )
        self.specs, self.centres, self.slot = specs, centres, slot
        self.goal = int(cats[slot])
        self.finger_xy = finger
        self.last_action = np.zeros(2, np.float32)
        self._outcome = (False, False)
        self._place_finger()
        return self._observe(), self._info()

    def _render_exemplar(self, rng: np.random.Generator, category: int, not_uid: int) -> np.ndarray:
        """(size, size, 3) uint8: another instance of ``category`` alone at the table centre, no fingertip.

        Rendered between removing the old scene and spawning the new one, so body ids still repeat.
        """
        pool = [s for s in self.pools[category] if s.uid != not_uid]
        spec = pool[int(rng.integers(len(pool)))]
        self.exemplar_uid = int(spec.uid)
        orn = p.getQuaternionFromEuler((0.0, 0.0, float(rng.uniform(-math.pi, math.pi))))
        objects.spawn(self.sim, spec, (0.0, 0.0, spec.extents[2] / 2.0), orn, static=True, name="exemplar")
        self.sim.set_base_pose(self.finger, (0.0, 0.0, -1.0), (0.0, 0.0, 0.0, 1.0))  # below it, never in front
        frame = self.camera.render(self.sim, self.view, seg=True)
        assert frame.seg is not None
        body = self.sim.bodies["exemplar"]
        frame.rgb[frame.seg != body] = TABLE_RGB  # the empty table, the fingertip painted out
        if self.category_colours:
            frame.rgb[frame.seg == body] = CATEGORY_RGB[category]
        self.sim.remove_body("exemplar")
        return frame.rgb

    def _layout(self, rng: np.random.Generator, specs: list[objects.ObjectSpec]) -> np.ndarray:
        """Object centres (n, 2) m: uniform in +-TARGET_RANGE, apart by MIN_SEPARATION and their footprints."""
        radii = [0.5 * math.hypot(s.extents[0], s.extents[1]) for s in specs]
        centres = np.zeros((len(specs), 2))
        for _ in range(LAYOUT_TRIES):
            for i in range(len(specs)):
                for _ in range(LAYOUT_TRIES):
                    c = rng.uniform(-TARGET_RANGE, TARGET_RANGE, size=2)
                    gaps = [
                        float(np.linalg.norm(c - centres[j])) - max(MIN_SEPARATION, radii[i] + radii[j] + OBJECT_GAP)
                        for j in range(i)
                    ]
                    if all(g >= 0 for g in gaps):
                        centres[i] = c
                        break
                else:
                    break  # no room for object i: draw the whole layout again
            else:
                return centres
        raise RuntimeError(f"could not place {len(specs)} objects apart in {LAYOUT_TRIES} layouts")

    def _finger_start(self, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
        best, best_d = np.zeros(2), -1.0
        for _ in range(LAYOUT_TRIES):
            finger = rng.uniform(-FINGER_RANGE, FINGER_RANGE, size=2)
            d = float(np.min(np.linalg.norm(centres - finger, axis=1)))
            if d >= MIN_START_DISTANCE:
                return finger
            if d > best_d:
                best, best_d = finger, d
        return best

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        if not self.specs:
            raise RuntimeError("call reset() before step()")
        try:
            a = np.clip(check_action(self.action_space, action), -1.0, 1.0)
        except (TypeError, ValueError) as err:  # e.g. a string: numpy's message would not name the action
            if "action=" in str(err):
                raise
            raise ValueError(f"action={action!r}; expected 2 finite numbers in [-1, 1]") from None
        before = self._distance()
        self.finger_xy = np.clip(self.finger_xy + self.step_size * a, -FINGER_RANGE, FINGER_RANGE)
        self.last_action = a.astype(np.float32)
        self._place_finger()
        touched = self._touched()
        success, wrong = touched == self.slot, touched >= 0 and touched != self.slot
        self._outcome = (bool(success), bool(wrong))
        reward = self.distance_weight * (before - self._distance())
        reward += self.success_bonus if success else 0.0
        reward -= self.wrong_penalty if wrong else 0.0
        return self._observe(), float(reward), bool(success or wrong), False, self._info()

    def _place_finger(self) -> None:
        x, y = (float(v) for v in self.finger_xy)
        self.sim.set_base_pose(self.finger, (x, y, FINGER_RADIUS), (0.0, 0.0, 0.0, 1.0))

    def _distance(self) -> float:
        """Metres between the fingertip and the goal object's centre, in the table plane."""
        return float(np.linalg.norm(self.finger_xy - self.centres[self.slot]))

    def _touched(self) -> int:
        """Index of the object whose centre is within touch_radius of the fingertip (-1: none; they never overlap)."""
        d = np.linalg.norm(self.centres - self.finger_xy, axis=1)
        i = int(np.argmin(d))
        return i if d[i] <= self.touch_radius else -1

    # -- sensing -----------------------------------------------------------
    def _image(self, camera: Camera) -> np.ndarray:
        frame = camera.render(self.sim, self.view, seg=True)
        assert frame.seg is not None
        frame.rgb[frame.seg < 0] = TABLE_RGB
        if self.category_colours:
            for i, spec in enumerate(self.specs):
                colour = CATEGORY_RGB[self.categories.index(spec.category)]
                frame.rgb[frame.seg == self.sim.bodies[f"object{i}"]] = colour
        return frame.rgb

    def _observe(self) -> dict[str, np.ndarray]:
        hand = (self.finger_xy / FINGER_RANGE).astype(np.float32)
        goal = np.zeros(len(self.categories), np.float32)
        goal[self.goal] = 1.0
        obs = {"rgb": self._image(self.camera), "proprio": np.concatenate([hand, self.last_action]), "goal": goal}
        if self.exemplar is not None:
            obs["goal_rgb"] = self.exemplar.copy()
        return obs

    def _info(self) -> dict[str, Any]:
        spec = self.specs[self.slot]
        info = {
            "success": self._outcome[0],
            "wrong": self._outcome[1],
            "distance": self._distance(),
            "fingertip": self.finger_xy.astype(np.float32),
            "target": self.centres[self.slot].astype(np.float32),
            "target_slot": int(self.slot),
            "target_instance": int(spec.uid),
            "target_category": spec.category,
            "target_category_id": int(spec.category_id),
            "goal": int(self.goal),
            "objects": self.centres.astype(np.float32),
            "instances": np.array([s.uid for s in self.specs], dtype=np.int64),
            "category_ids": np.array([s.category_id for s in self.specs], dtype=np.int64),
            "category_index": np.array([self.categories.index(s.category) for s in self.specs], dtype=np.int64),
        }
        if self.goal_image:
            info["exemplar_instance"] = self.exemplar_uid
        return info

    def render(self) -> np.ndarray | None:
        """(S, S, 3) uint8: the observation camera's view at ``render_size``."""
        if self.render_mode != "rgb_array" or not self.specs:
            return None
        return self._image(self.render_camera)

    def close(self) -> None:
        self.sim.close()


class ReachObjectOracle:
    """The scripted oracle of ReachObject: privileged state (``info``'s object positions), no pixels.

    ``policy(obs, info) -> action``, greedy: of the direct move towards the goal object's centre
    (clipped to the action box) and ``headings`` full-length moves around the compass, the one that
    ends nearest the goal object without ending within ``touch_radius + margin`` m of another
    object's centre. The objects are convex discs to it, at least 0.12 m apart, so sliding round
    a distractor always leads on.
    """

    def __init__(
        self, step_size: float = 0.03, touch_radius: float = 0.04, margin: float = 0.01, headings: int = 64
    ) -> None:
        self.step_size = float(step_size)
        self.keep_out = float(touch_radius) + float(margin)
        angles = np.linspace(0.0, 2.0 * math.pi, int(headings), endpoint=False)
        unit = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        self.moves = unit / np.max(np.abs(unit), axis=1, keepdims=True)  # the longest move in the box

    @classmethod
    def for_env(cls, env: gym.Env) -> ReachObjectOracle:
        base = env.unwrapped
        return cls(step_size=base.step_size, touch_radius=base.touch_radius)  # type: ignore[attr-defined]

    def reset(self, seed: int | None = None) -> None:
        """Stateless: nothing to reset."""

    def __call__(self, obs: Any, info: dict[str, Any]) -> np.ndarray:
        f = np.asarray(info["fingertip"], np.float64)
        goal = np.asarray(info["target"], np.float64)
        slot = int(info["target_slot"])
        others = np.array([c for i, c in enumerate(info["objects"]) if i != slot], np.float64).reshape(-1, 2)
        direct = np.clip((goal - f) / self.step_size, -1.0, 1.0)
        actions = np.concatenate([direct[None], self.moves])
        ends = np.clip(f + self.step_size * actions, -FINGER_RANGE, FINGER_RANGE)
        clear = np.all(np.linalg.norm(ends[:, None] - others[None], axis=2) > self.keep_out, axis=1)
        cost = np.linalg.norm(ends - goal, axis=1) + np.where(clear, 0.0, np.inf)
        return actions[int(np.argmin(cost))].astype(np.float32)


__all__ = ["DEFAULT_CATEGORIES", "ReachObjectEnv", "ReachObjectOracle"]
