"""Every custom property the add-on writes into a user's .blend: its name, what it is on, its type and meaning.

These keys are a file format: .blend files saved today are opened by later versions, and scripts read them
(the README's Scripting section). Rename none; add new ones here, with their meaning; code reads and writes
them through these names only (tests/utils/test_schema.py checks that no other `sam3d_…` literal exists).
Values read back from a file are untrusted (a .blend may be hostile): readers check their type.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Key:
    name: str
    on: str  # what carries it
    kind: str  # its type as stored (ID properties hold numbers, strings, lists of numbers and dicts)
    meaning: str


KEYS: dict[str, Key] = {}


def _key(name: str, on: str, kind: str, meaning: str) -> str:
    KEYS[name] = Key(name, on, kind, meaning)
    return name


# --- a reconstructed object (the root of what one result imported) -------------------------------------
TASK_UUID = _key("sam3d_task_uuid", "object", "str", "the Runware task it came from (Re-import, Retry, History)")
SEED = _key("sam3d_seed", "object", "str", "the seed Runware reports for the result")
COST = _key("sam3d_cost", "object", "float", "what Runware charged for the result, in USD")
PROMPT = _key("sam3d_prompt", "object", "str", "the prompt sent with the task")
CAPTION = _key("sam3d_caption", "object", "str", "what a caption task said the object is (Name from Caption)")
IMAGE = _key("sam3d_image", "object", "str", "the photo's image name (the objects of one photo)")
MASK = _key("sam3d_mask", "object", "str", "the mask's image name")
MODEL = _key("sam3d_model", "object", "str", "the model id that made it (meta:sam@3d)")
GLB = _key("sam3d_glb", "object", "str", "the result file it was imported from")
RESULT_INDEX = _key("sam3d_result_index", "object", "int", "which of the task's results it is")
FRAME = _key("sam3d_frame", "object", "str", "POSED (in the photo's camera frame) or CANONICAL (unit cube)")
POSE = _key("sam3d_pose", "object", "16 floats", "its matrix in the photo camera's frame (As in the Photo)")
WINDOW = _key("sam3d_window", "object", "4 floats", "the camera's view window its pose was made for (Re-layout)")
TANGENT = _key("sam3d_tangent", "object", "float", "older files: the view's tangent, read when WINDOW is missing")
MASK_BOX = _key("sam3d_mask_box", "object", "4 floats", "its mask's box (left, top, right, bottom; 0–1, top = 0)")
SIZE = _key("sam3d_size", "object", "3 floats", "its bounding size when laid out (a canonical result's)")
MASK_LOWRES = _key("sam3d_mask_lowres", "object", "str", "its mask, small ('WxH:hex' bits), for the calibration")
REAL_SIZE = _key("sam3d_real_size", "object", "dict", "Set Real Size: {'size': metres, 'axis': 'X'|'Y'|'Z'|'H'}")
REAL_HEIGHT = _key("sam3d_real_height", "object", "float", "asset library: the real height it was scaled to (m)")
BAKED = _key("sam3d_baked", "object", "int", "Bake to Texture: the texture's resolution")
TRIANGLES = _key("sam3d_triangles", "object", "int", "Bake to Texture: its triangles after the Triangle Budget")
REFINED_FROM = _key("sam3d_refined_from", "object", "str", "Refine: the SAM 3D object it was fitted onto (hidden)")
FIT_ERROR = _key("sam3d_fit_error", "object", "float", "Refine: the fit's RMS distance, a share of the object's size")
SOURCE = _key("sam3d_source", "asset", "str", "asset library: the item's path in the photo folder")
SOURCE_PHOTO = _key("sam3d_source_photo", "asset", "str", "asset library: the photo's path")

# --- the photo's camera ----------------------------------------------------------------------------------
PHOTO = _key("sam3d_photo", "camera, collection", "str", "the photo's image name it is the camera (collection) of")
SCALE = _key("sam3d_scale", "camera", "float", "Set Real Size: the scale of the photo's scene")
GROUND = _key("sam3d_ground", "camera", "float", "the ground's height under the camera, before SCALE")
FOCAL_MM = _key("sam3d_focal_mm", "camera", "float", "the focal length (36 mm sensor) the calibration found")
FIT = _key("sam3d_fit", "camera", "dict", "the calibration's fit: object name → silhouette IoU")

# --- made by the add-on ----------------------------------------------------------------------------------
MADE = _key("sam3d_made", "image, collection", "str or bool", "made by the add-on (its kind: a mask, a preview): "
            "never taken for a photo")
UPRIGHT_OF = _key("sam3d_upright_of", "image", "str", "an upright copy of this photo (EXIF orientation applied)")
SHADOW_CATCHER = _key("sam3d_shadow_catcher", "object", "str", "Composite over Photo: the catcher of this photo")
COMPOSITE = _key("sam3d_composite", "node tree", "bool", "Composite over Photo: the compositor nodes are ours")
LENS_LOCKED = _key("sam3d_lens_locked", "camera data", "bool (registered)", "the user's lens is kept: no calibration")
ATTRIBUTE = _key("sam3d_attribute", "material", "str", "the vertex-colour material of this colour attribute")
