"""Procedural rooms for the ego-motion environment.

Scene classes differ, like SUN scene categories, by room size and layout, the
furniture in them, floor / wall textures and which object categories populate
them, so "which room is this?" is a meaningful downstream recognition test.
Every scene is a pure function of an integer ``scene_id``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pybullet as p

from embodied.sim import objects
from embodied.sim.assets import procedural_texture, write_texture
from embodied.sim.bullet import BulletSim

WALL_HEIGHT = 1.6  # m
WALL_THICKNESS = 0.1  # m
# Library objects are tabletop-sized (5-20 cm); at room scale, seen from 0.45 m, they would be
# a few pixels. Rooms use them enlarged, as toy-box and furniture-sized things.
OBJECT_SCALE = 2.5


@dataclass(frozen=True)
class SceneStyle:
    """What makes a scene class recognisable.

    size: (min, max) side length of the room in metres; furniture: kinds placed
    (see ``_FURNITURE``); categories: object-library categories found there (one the library
    lacks is a ValueError when the style is made, never silently dropped).
    """

    size: tuple[float, float]
    floor_patterns: tuple[str, ...]
    floor_hues: tuple[tuple[float, float, float], ...]
    wall_patterns: tuple[str, ...]
    wall_hues: tuple[tuple[float, float, float], ...]
    furniture: tuple[str, ...]
    n_furniture: tuple[int, int]
    categories: tuple[str, ...]
    n_objects: tuple[int, int]

    def __post_init__(self) -> None:
        unknown = [c for c in self.categories if c not in objects.CATEGORIES]
        if unknown or not self.categories:
            raise ValueError(
                f"scene style categories={list(self.categories)} names {unknown or 'none'}, not in the object "
                f"library; expected a non-empty subset of {list(objects.CATEGORIES)}"
            )


SCENE_STYLES: dict[str, SceneStyle] = {
    "kitchen": SceneStyle(
        size=(3.5, 4.5),
        floor_patterns=("checker",),
        floor_hues=((0.9, 0.9, 0.85), (0.3, 0.3, 0.35)),
        wall_patterns=("plain", "dots"),
        wall_hues=((0.95, 0.95, 0.8), (0.8, 0.9, 0.85)),
        furniture=("counter", "table"),
        n_furniture=(2, 4),
        categories=("cup", "bowl", "plate", "bottle", "mug", "can"),
        n_objects=(6, 10),
    ),
    "office": SceneStyle(
        size=(4.0, 5.5),
        floor_patterns=("noise",),
        floor_hues=((0.35, 0.38, 0.45), (0.25, 0.27, 0.33)),
        wall_patterns=("plain",),
        wall_hues=((0.85, 0.85, 0.88), (0.75, 0.8, 0.9)),
        furniture=("desk", "shelf"),
        n_furniture=(3, 5),
        categories=("box", "mug", "can", "bottle"),
        n_objects=(5, 9),
    ),
    "playroom": SceneStyle(
        size=(3.5, 5.0),
        floor_patterns=("stripes", "dots"),
        floor_hues=((0.95, 0.6, 0.3), (0.4, 0.7, 0.95), (0.95, 0.85, 0.3)),
        wall_patterns=("stripes", "checker"),
        wall_hues=((0.95, 0.75, 0.85), (0.7, 0.95, 0.7)),
        furniture=("bed", "toybox"),
        n_furniture=(1, 3),
        categories=("ball", "teddy", "duck", "torus", "brick"),  # brick: the toy bricks of a playroom
        n_objects=(7, 12),
    ),
    "garage": SceneStyle(
        size=(5.0, 6.5),
        floor_patterns=("noise",),
        floor_hues=((0.55, 0.55, 0.55), (0.45, 0.45, 0.47)),
        wall_patterns=("checker", "noise"),
        wall_hues=((0.6, 0.55, 0.5), (0.5, 0.5, 0.55)),
        furniture=("car", "shelf", "workbench"),
        n_furniture=(2, 3),
        categories=("brick", "can", "box", "torus", "bottle"),
        n_objects=(5, 9),
    ),
    "bathroom": SceneStyle(
        size=(2.8, 3.6),
        floor_patterns=("checker",),
        floor_hues=((0.85, 0.95, 1.0), (0.5, 0.75, 0.85)),
        wall_patterns=("checker",),
        wall_hues=((1.0, 1.0, 1.0), (0.7, 0.85, 0.95)),
        furniture=("tub", "sink"),
        n_furniture=(2, 2),
        categories=("bottle", "vase", "cup", "duck", "ball"),
        n_objects=(4, 7),
    ),
}
SCENE_CLASSES: tuple[str, ...] = tuple(SCENE_STYLES)

# name -> (half extents x, y, z in metres, rgba, wall-hugging?)
_FURNITURE: dict[str, tuple[tuple[float, float, float], tuple[float, float, float, float], bool]] = {
    "counter": ((0.9, 0.3, 0.45), (0.55, 0.35, 0.2, 1.0), True),
    "table": ((0.5, 0.4, 0.38), (0.6, 0.45, 0.25, 1.0), False),
    "desk": ((0.6, 0.35, 0.37), (0.3, 0.3, 0.32, 1.0), True),
    "shelf": ((0.5, 0.18, 0.8), (0.45, 0.3, 0.2, 1.0), True),
    "bed": ((1.0, 0.5, 0.25), (0.3, 0.4, 0.85, 1.0), True),
    "toybox": ((0.3, 0.25, 0.2), (0.9, 0.2, 0.2, 1.0), False),
    "car": ((1.1, 0.45, 0.4), (0.7, 0.1, 0.1, 1.0), False),
    "workbench": ((0.8, 0.3, 0.45), (0.4, 0.35, 0.3, 1.0), True),
    "tub": ((0.8, 0.38, 0.28), (0.97, 0.97, 0.97, 1.0), True),
    "sink": ((0.3, 0.25, 0.42), (0.9, 0.9, 0.92, 1.0), True),
}


@dataclass
class Scene:
    """A built room. ``object_bodies`` maps body id -> (instance uid, category); ``floor`` is a body id."""

    scene_id: int
    scene_class: str
    half_size: tuple[float, float]
    start: tuple[float, float, float]
    object_bodies: dict[int, tuple[int, str]] = field(default_factory=dict)
    floor: int = -1

    @property
    def scene_class_id(self) -> int:
        return SCENE_CLASSES.index(self.scene_class)


def _textured_box(
    sim: BulletSim,
    half: tuple[float, float, float],
    pos: tuple[float, float, float],
    rgba: tuple[float, float, float, float],
    texture: int = -1,
) -> int:
    body = sim.create_body("box", pos, rgba=rgba, halfExtents=half)
    if texture >= 0:
        sim.set_color(body, (1, 1, 1, 1), texture=texture)
    return body


def _texture(
    sim: BulletSim,
    rng: np.random.Generator,
    patterns: tuple[str, ...],
    hues: tuple[tuple[float, float, float], ...],
    tiles: int,
) -> int:
    """A tiled procedural texture loaded into ``sim`` (tiling keeps tiles small on big surfaces)."""
    pattern = str(rng.choice(patterns))
    i, j = rng.choice(len(hues), size=2, replace=len(hues) < 2)
    jitter = rng.uniform(-0.06, 0.06, size=(2, 3))
    colors = np.clip(np.array([hues[i], hues[j]]) + jitter, 0, 1)
    tile_seed = int(rng.integers(2**31))
    image = np.tile(procedural_texture(pattern, colors, np.random.default_rng(tile_seed), size=32), (tiles, tiles, 1))
    params = {"pattern": pattern, "colors": np.round(colors, 4).tolist(), "seed": tile_seed, "tiles": tiles}
    return sim.load_texture(str(write_texture(params, image)))


# (x, y, radius) footprints already used; (x, y, z_top, half_x, half_y) furniture tops
Footprints = list[tuple[float, float, float]]
Surfaces = list[tuple[float, float, float, float, float]]


def _free(occupied: Footprints, x: float, y: float, r: float) -> bool:
    """Whether a disc of radius ``r`` (m) at (x, y) overlaps no footprint in ``occupied``."""
    return all(math.hypot(x - ox, y - oy) > r + orad for ox, oy, orad in occupied)


def build_scene(sim: BulletSim, scene_id: int, scene_class: str, split: str = "train") -> Scene:
    """Build the room ``scene_id`` of ``scene_class`` into an empty world of ``sim``.

    Objects are static (mass 0): the rig collides with them, and a world with a
    single dynamic body keeps physics cheap and exactly repeatable.
    """
    style = SCENE_STYLES[scene_class]
    rng = np.random.default_rng([scene_id, SCENE_CLASSES.index(scene_class)])
    hx, hy = (float(rng.uniform(*style.size)) / 2 for _ in range(2))
    floor = _build_shell(sim, rng, style, hx, hy)
    occupied: Footprints = []
    surfaces = _place_furniture(sim, rng, style, hx, hy, occupied)
    scene = Scene(scene_id=scene_id, scene_class=scene_class, half_size=(hx, hy), start=(0.0, 0.0, 0.0), floor=floor)
    _place_objects(sim, rng, style, split, scene, occupied, surfaces)
    # Start in the free spot nearest a random point, facing a random way.
    for _attempt in range(50):
        x, y = float(rng.uniform(-hx + 0.4, hx - 0.4)), float(rng.uniform(-hy + 0.4, hy - 0.4))
        if _free(occupied, x, y, 0.35):
            break
    scene.start = (x, y, float(rng.uniform(-math.pi, math.pi)))
    return scene


def _build_shell(sim: BulletSim, rng: np.random.Generator, style: SceneStyle, hx: float, hy: float) -> int:
    """The textured floor and four walls of a room ``2 hx`` x ``2 hy`` m; returns the floor's body id."""
    floor_tex = _texture(sim, rng, style.floor_patterns, style.floor_hues, tiles=4)
    wall_tex = _texture(sim, rng, style.wall_patterns, style.wall_hues, tiles=2)
    floor = _textured_box(sim, (hx, hy, 0.05), (0.0, 0.0, -0.05), (1, 1, 1, 1), floor_tex)
    t, h = WALL_THICKNESS / 2, WALL_HEIGHT / 2
    for half, pos in (
        ((hx + 2 * t, t, h), (0.0, hy + t, h)),
        ((hx + 2 * t, t, h), (0.0, -hy - t, h)),
        ((t, hy, h), (hx + t, 0.0, h)),
        ((t, hy, h), (-hx - t, 0.0, h)),
    ):
        _textured_box(sim, half, pos, (1, 1, 1, 1), wall_tex)
    return floor


def _place_furniture(
    sim: BulletSim, rng: np.random.Generator, style: SceneStyle, hx: float, hy: float, occupied: Footprints
) -> Surfaces:
    """Furniture of ``style`` at free spots (wall-hugging kinds against a wall); returns their tops."""
    surfaces: Surfaces = []
    for _ in range(int(rng.integers(style.n_furniture[0], style.n_furniture[1] + 1))):
        kind = str(rng.choice(style.furniture))
        (fx, fy, fz), rgba, hug = _FURNITURE[kind]
        r = math.hypot(fx, fy)
        for _attempt in range(20):
            if hug:  # against a random wall, rotated to face into the room
                wall = int(rng.integers(4))
                along = float(rng.uniform(-1, 1))
                if wall < 2:
                    x, y, swap = along * max(hx - fx, 0.0), (hy - fy - 0.02) * (1 if wall == 0 else -1), False
                else:
                    x, y, swap = (hx - fy - 0.02) * (1 if wall == 2 else -1), along * max(hy - fx, 0.0), True
            else:
                x, y, swap = float(rng.uniform(-hx + r, hx - r)), float(rng.uniform(-hy + r, hy - r)), False
            if _free(occupied, x, y, r * 0.8):
                half = (fy, fx, fz) if swap else (fx, fy, fz)
                color = tuple(np.clip(np.array(rgba[:3]) + rng.uniform(-0.08, 0.08, 3), 0, 1)) + (1.0,)
                _textured_box(sim, half, (x, y, fz), color)
                occupied.append((x, y, r * 0.8))
                surfaces.append((x, y, 2 * fz, half[0], half[1]))
                break
    return surfaces


def _place_objects(
    sim: BulletSim,
    rng: np.random.Generator,
    style: SceneStyle,
    split: str,
    scene: Scene,
    occupied: Footprints,
    surfaces: Surfaces,
) -> None:
    """Library objects of ``style``'s categories, enlarged, on furniture tops or free floor spots;
    recorded in ``scene.object_bodies``."""
    hx, hy = scene.half_size
    pool = objects.instances(split, categories=style.categories)
    for n in range(int(rng.integers(style.n_objects[0], style.n_objects[1] + 1))):
        spec = pool[int(rng.integers(len(pool)))]
        ex, ey, ez = (e * OBJECT_SCALE for e in spec.extents)
        yaw = float(rng.uniform(-math.pi, math.pi))
        orn = p.getQuaternionFromEuler((0.0, 0.0, yaw))
        if surfaces and rng.random() < 0.6:  # on a furniture top
            sx, sy, sz, shx, shy = surfaces[int(rng.integers(len(surfaces)))]
            x = sx + float(rng.uniform(-0.8, 0.8)) * max(shx - ex / 2, 0.0)
            y = sy + float(rng.uniform(-0.8, 0.8)) * max(shy - ey / 2, 0.0)
            pos = (x, y, sz + ez / 2)
        else:
            r = 0.5 * max(ex, ey)
            x = float(rng.uniform(-hx + r + 0.05, hx - r - 0.05))
            y = float(rng.uniform(-hy + r + 0.05, hy - r - 0.05))
            if not _free(occupied, x, y, r):
                continue
            occupied.append((x, y, r))
            pos = (x, y, ez / 2)
        body = objects.spawn(sim, spec, pos, orn, static=True, name=f"scene_obj{n}", scale=OBJECT_SCALE)
        scene.object_bodies[body] = (spec.uid, spec.category)
