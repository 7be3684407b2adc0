"""Bake a SAM 3D result into an engine-ready asset: fewer triangles, a UV map, and its colour in a texture.

SAM 3D returns a dense mesh (100k–300k triangles) coloured by vertex colours. Game engines and glTF viewers
want a lighter mesh with a UV-mapped image: `bake_object` reduces the mesh (the Triangle Budget), unwraps it
(Smart UV Project), bakes the original's base colour onto it with Cycles (selected to active) and gives it a
material that reads the image through the UV map. The vertex colours stay on the mesh as a colour attribute,
unused by the material. An engine's PBR result also gets its metallic, roughness, normal and emission baked.

  errors.py     BakeError, the sentence every step raises
  budget.py     the Triangle Budget (`reduced_mesh`): one rule for Bake, Reconstruct and the asset library
  staging.py    the scene settings a bake changes and puts back, the datablocks it makes
  unwrap.py     the UV map and its small islands
  materials.py  where the colour comes from; the material showing the baked texture
  maps.py       the PBR maps besides the colour: what to bake, each input as an emission, their links
  baking.py     `bake_object`: the steps in order, on copies, swapped in only when all has worked
  run.py        the operator (sam3d.bake) and its modal run, one object per timer event

Self-contained on purpose: bpy, bmesh, mathutils, numpy, the standard library, the schema, the translation
functions and importing's materials only. No operator here runs under `bpy.context.temp_override` (Blender
4.2 and 5.0 crash when another thread runs Python meanwhile): objects are selected and made active through
the view layer instead.
"""

from .baking import bake_object
from .budget import decimate, reduced_mesh, triangle_count
from .errors import BakeError
from .run import PROGRESS, BakeRun, SAM3D_OT_bake, classes, is_sam3d, running, targets

__all__ = ["PROGRESS", "SAM3D_OT_bake", "BakeError", "BakeRun", "bake_object", "classes", "decimate", "is_sam3d",
           "reduced_mesh", "running", "targets", "triangle_count"]
