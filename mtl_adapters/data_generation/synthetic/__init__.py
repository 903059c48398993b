"""Procedural indoor scenes with physically consistent S/D/N/E targets, in Taskonomy's format.

A small vectorised NumPy ray caster (no GPU, no downloads) renders closed box rooms (floor,
four walls, ceiling) furnished with boxes (tables, cabinets), spheres (balls) and vertical
cylinders (vases, pillars), textured procedurally (checker / stripes / value noise / grid /
dots / waves, box-filtered over the pixel footprint so they do not alias) and lit by point and
directional lights (Lambertian, ambient term, hard shadows cast by the furniture), seen by a
pinhole camera standing in the room.

Every target comes from the same ray hits as the picture:

* depth: z-depth in metres (the ray parameter of ``K^-1 [u, v, 1]`` rays, i.e. distance along
  the optical axis, as Taskonomy's ``depth_zbuffer``); the room is closed, so every pixel hits
  something and depth is valid everywhere;
* normal: the analytic surface normal rotated into the OpenCV camera frame (x right, y down,
  z forward) and turned to face the camera (``n . ray < 0``);
* seg: the class of the object hit, train ids in the order of ``SYNTHETIC_CLASSES``;
* edge: Taskonomy's texture edges of the rendered RGB (``texture_edges``).

Randomness: a *scene* (room layout and furniture) is drawn from ``(scene_seed, 0)``, its
appearance (materials, lights) from ``(scene_seed, 1)`` with the distributions of the chosen
``style`` and each *view* (camera pose) from ``(scene_seed, 2, view)``. The style only changes
appearance, so ``style='alt'`` is a second domain with the same geometry distribution (the same
seed even gives the very same geometry and camera: paired images). ``generate`` writes
``num_scenes`` scenes as Taskonomy "buildings" with one "point" per view (view index 0).

Modules, each importing only the ones before it: ``layout`` (classes, random streams, room
layouts, cameras and their intrinsics), ``textures`` (styles, materials, lights, procedural
textures), ``render`` (ray intersection, surfaces, shadows, ``render_view``) and ``writer``
(``generate``: file paths, splits, ``meta.json``, the worker pool). The names below are the
public API; import them from this package.
"""
from .layout import HFOV_DEG, SYNTHETIC_CLASSES, camera_intrinsics, scene_seed
from .render import render_view
from .textures import STYLES
from .writer import DEFAULT_SIZE, DEFAULT_SPLITS, generate, scene_name, synthetic_tasks, view_paths

__all__ = ['SYNTHETIC_CLASSES', 'STYLES', 'HFOV_DEG', 'DEFAULT_SIZE', 'DEFAULT_SPLITS',
           'camera_intrinsics', 'scene_seed', 'scene_name', 'render_view', 'synthetic_tasks',
           'view_paths', 'generate']
