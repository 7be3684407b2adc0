"""Every image-to-3D model on the user's Runware key, as plain data, and the `3dInference` task each one takes.

All of them are one task type (`3dInference`); what differs is the input key (`inputs.image`, `inputs.images`,
or SAM 3D's image and mask), whether a text prompt alone may drive it, whether it takes a seed, and the
`settings` it documents. Runware refuses a parameter a model does not declare (`unsupportedParameter`), so a
request carries only what the engine's registry entry names, and a value outside its documented bounds is
refused here, before anything is sent or paid for. Where each fact comes from: docs/engines.md.

Nothing here does I/O or imports bpy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from . import tasks

InputKind = Literal["image+mask", "image", "images"]
SettingKind = Literal["int", "float", "enum", "bool"]
# What a cross-setting rule is shown: the settings given (by name) and how many images the request carries.
Check = Callable[[Mapping[str, Any], int], "str | None"]

# No fitting Code in client/errors.py: an unknown engine or setting, or a setting out of its bounds, is a
# caller's mistake caught before sending, so it is a ValueError (this subclass), never a Sam3dError.
PESSIMISTIC_PRICE = 1.00  # USD per result, reserved for an engine whose price no Runware page shows


class EngineError(ValueError):
    """A request an engine cannot take: refused here, before anything is sent."""


@dataclass(frozen=True)
class Setting:
    """One documented parameter of an engine, at the path it is sent under (e.g. ("settings", "textureSize"))."""

    key: tuple[str, ...]
    label: str
    kind: SettingKind
    description: str
    default: Any = None  # the server's documented default; None where the docs give none. Never sent by us.
    minimum: float | None = None
    maximum: float | None = None
    step: int | None = None  # an int setting that must be a multiple of this
    choices: tuple[Any, ...] = ()
    source: str = ""

    @property
    def name(self) -> str:
        return self.key[-1]

    def problem(self, value: Any) -> str | None:
        """Why `value` is not a valid value of this setting, or None when it is."""
        if self.kind == "bool":
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind == "enum":
            ok = any(value == c and type(value) is type(c) for c in self.choices)
            return None if ok else "must be one of " + ", ".join(repr(c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        if self.kind == "int" and not isinstance(value, int):
            return "must be a whole number"
        if not math.isfinite(value):
            return "must be a finite number"
        if (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum):
            return f"must be between {_plain(self.minimum)} and {_plain(self.maximum)}"
        if self.step and value % self.step:
            return f"must be a multiple of {self.step}"
        return None


@dataclass(frozen=True)
class Engine:
    """One image-to-3D model on Runware's `3dInference` task, as its documentation describes it."""

    id: str
    label: str
    model: str
    description: str
    input_kind: InputKind
    max_images: int
    accepts_text: bool  # a text prompt alone (no image) may drive it
    posed: bool  # the result is placed in the photo's camera (only SAM 3D)
    pbr: bool
    quads: bool
    documented_price: float | None  # USD per result, a Runware page's example; None where none is shown
    worst_case_price: float  # what to reserve per result before Runware reports a price
    settings: tuple[Setting, ...] = ()
    seed_max: int | None = None  # None: the model takes no top-level seed
    checks: tuple[Check, ...] = ()
    quad_when: tuple[str, Any] | None = None  # (setting, value) with which it makes quad faces
    max_prompt: int | None = None  # characters of a text-only prompt, where the engine documents a cap

    def wants_quads(self, values: dict[str, Any]) -> bool:
        """Whether these settings ask for quad faces (a GLB carries triangles: the import joins them again)."""
        if self.quad_when is None:
            return False
        name, value = self.quad_when
        return values.get(name, self.setting(name).default) == value

    def setting(self, name: str) -> Setting:
        for spec in self.settings:
            if spec.name == name:
                return spec
        known = ", ".join(s.name for s in self.settings) or "none"
        raise EngineError(f"{self.label} has no setting {name!r} (its settings: {known}).")


def _plain(number: float | None) -> str:
    return "?" if number is None else f"{number:g}" if isinstance(number, float) else str(number)


# --- cross-setting rules, as the models' "Compatibility & Validation" sections state them ----------------


def _not_both(a: str, b: str) -> Check:
    return lambda given, _n: f"{a} cannot be used with {b}." if a in given and b in given else None


def _absent_when(key: str, value: Any, other: str) -> Check:
    return lambda given, _n: (f"{other} cannot be used when {key} is {value!r}."
                              if key in given and given[key] == value and other in given else None)


def _requires(key: str, other: str, value: Any) -> Check:
    return lambda given, _n: (f"{key} needs {other} set to {value!r}."
                              if key in given and given.get(other) != value else None)


def _needs_images(key: str) -> Check:
    return lambda given, images: f"{key} needs an input image." if key in given and not images else None


def _rodin_poly_count(given: Mapping[str, Any], _images: int) -> str | None:
    """Rodin's polyCount range depends on the mesh mode: Quad (the default) 1,000-200,000, Raw 500-1,000,000."""
    if "polyCount" not in given:
        return None
    low, high = (500, 1_000_000) if given.get("meshMode") == "Raw" else (1_000, 200_000)
    mode = given.get("meshMode", "Quad")
    ok = low <= given["polyCount"] <= high
    return None if ok else f"polyCount must be between {low} and {high} in {mode} mode."


def _tripo_face_limit(given: Mapping[str, Any], _images: int) -> str | None:
    """Tripo's faceLimit: 500-20,000, but 500-10,000 with quad faces (its ComfyUI node's description)."""
    if given.get("quad") is True and given.get("faceLimit", 0) > 10_000:
        return "faceLimit must be between 500 and 10000 with quad on."
    return None


def _bool(name: str, label: str, description: str, source: str, default: bool | None = None) -> Setting:
    return Setting(("settings", name), label, "bool", description, default=default, source=source)


def _enum(name: str, label: str, choices: tuple[Any, ...], description: str, source: str,
          default: Any = None) -> Setting:
    return Setting(("settings", name), label, "enum", description, default=default, choices=choices, source=source)


def _int(name: str, label: str, low: int, high: int, description: str, source: str,
         default: int | None = None, step: int | None = None) -> Setting:
    return Setting(("settings", name), label, "int", description, default=default, minimum=low, maximum=high,
                   step=step, source=source)


MS_PROVIDER = "runware.ai/docs/providers/microsoft"
HY_PRO = "runware.ai/docs/models/tencent-hunyuan-3d-3-1-pro"
HY_RAPID = "runware.ai/docs/models/tencent-hunyuan-3d-3-1-rapid"
COMFY = "Runware/ComfyUI-Runware modules/threeDInferenceSettings.py"
SKILL = "Runware/runware-skills skills/image-to-3d-asset"
RODIN_GUIDE = "runware.ai/docs/models/hyper3d-rodin-gen-2/guides/topology-and-polygon-budget"
MESHY = "runware.ai/docs/models/meshy-6"
MESHY_EX = "runware.ai/docs/models/meshy-6/examples"

TRELLIS_SETTINGS = (
    _int("textureSize", "Texture Size", 1024, 4096, "Resolution of the output texture map, in pixels.",
         MS_PROVIDER, default=2048, step=1024),
    _int("decimationTarget", "Target Faces", 100_000, 1_000_000,
         "Polygon count the mesh is simplified to: lower for lighter models.", MS_PROVIDER, default=500_000),
    _enum("resolution", "Resolution", (512, 1024, 1536), "Voxel grid resolution of the generation.",
          MS_PROVIDER, default=1024),
    _bool("remesh", "Remesh", "Remesh the output for cleaner topology.", MS_PROVIDER, default=True),
)

HUNYUAN_PRO_SETTINGS = (
    _enum("generateType", "Generation", ("Normal", "LowPoly", "Geometry"),
          "Normal: textured; LowPoly: a low-poly mesh; Geometry: an untextured white model.",
          f"{HY_PRO} (Compatibility & Validation); Normal from {COMFY}"),
    _bool("pbr", "PBR", "PBR materials (not with the Geometry type).", f"{HY_PRO} (Compatibility & Validation)"),
    _enum("polygonType", "Polygon Type", ("triangle", "quadrilateral"),
          "Faces of a LowPoly mesh (needs generateType LowPoly).",
          f"name: {HY_PRO} (Compatibility & Validation); values: {COMFY}"),
)

HUNYUAN_RAPID_SETTINGS = (
    _bool("pbr", "PBR", "PBR materials (not with Geometry Only).", f"{HY_RAPID} (Compatibility & Validation)"),
    _bool("geometryOnly", "Shape Only", "A white model without texture, sent without an output format.",
          f"{HY_RAPID} (Compatibility & Validation)"),
)

TRIPO_SETTINGS = (
    _int("faceLimit", "Face Limit", 500, 20_000, "Most faces of the mesh; adaptive when unset.", COMFY),
    _bool("quad", "Quad Mesh", "Quad faces instead of triangles.", COMFY, default=False),
    _bool("texture", "Texture", "Texture the mesh; off gives an untextured base mesh.", COMFY, default=True),
    _bool("pbr", "PBR", "PBR materials.", COMFY, default=True),
    _enum("textureQuality", "Texture", ("standard", "detailed"), "detailed: high-resolution textures.",
          COMFY, default="standard"),
    _enum("geometryQuality", "Geometry", ("standard", "detailed"), "detailed: the most geometric detail.",
          COMFY, default="standard"),
    _bool("autoSize", "Real Size", "Scale the model to real-world size, in metres.", COMFY, default=False),
    _enum("orientation", "Orientation", ("default", "align_image"),
          "align_image rotates the model to match the source image.", COMFY, default="default"),
    _bool("smartLowPoly", "Smart Topo", "Low-poly mesh with hand-crafted-like topology.", COMFY, default=False),
)

RODIN_SETTINGS = (
    _enum("meshMode", "Mesh Mode", ("Quad", "Raw"),
          "Quad: quad-dominant loops that rig and subdivide cleanly; Raw: denser triangles.",
          f"{RODIN_GUIDE}; {SKILL}", default="Quad"),
    _enum("quality", "Quality", ("high", "medium", "low", "extra-low"),
          "A face-count preset (its count depends on the mesh mode); not with Poly Count.", SKILL),
    _int("polyCount", "Poly Count", 500, 1_000_000,
         "Exact face budget: Quad 1,000-200,000, Raw 500-1,000,000; not with Quality.", SKILL),
    _enum("material", "Material", ("PBR", "Shaded", "All"),
          "PBR relights in an engine; Shaded bakes the lighting in; All returns both.", SKILL, default="PBR"),
    _bool("taPose", "T/A Pose", "Humanoids in a neutral T/A pose, ready to rig.", SKILL),
    _bool("hdTexture", "HD Texture", "Higher-quality texture.", SKILL),
)

MESHY_SETTINGS = (
    _enum("meshType", "Mesh Type", ("standard", "lowpoly"),
          "lowpoly ignores Poly Count, Topology, Decimation and Remesh.", SKILL, default="standard"),
    _enum("topology", "Topology", ("quad", "triangle"), "Face type of the remeshed mesh (needs Remesh).",
          f"{MESHY_EX}; {COMFY}"),
    _int("polyCount", "Poly Count", 100, 300_000, "Target face count (needs Remesh; not with Decimation).",
         SKILL),
    _int("decimation", "Decimation", 1, 4, "Adaptive decimation level: 1 ultra, 2 high, 3 medium, 4 low "
         "(needs Remesh; not with Poly Count).", f"{MESHY_EX}; {COMFY}"),
    _bool("remesh", "Remesh", "The remeshing pass Topology, Poly Count and Decimation need.", MESHY),
    _enum("symmetry", "Symmetry", ("auto", "on", "off"), "Symmetry of the generated shape.",
          f"{MESHY_EX}; {COMFY}"),
    _enum("pose", "Pose", ("a-pose", "t-pose"), "Humanoids in an A or T pose.", f"{SKILL}; {COMFY}"),
    _bool("texture", "Texture", "Texture the mesh (PBR needs it).", f"{MESHY}; {MESHY_EX}"),
    _bool("pbr", "PBR", "Metallic, roughness and normal maps besides the base colour.", f"{MESHY}; {SKILL}"),
    _bool("hdTexture", "HD Texture", "High-definition texture.", MESHY_EX),
    _bool("removeLighting", "Remove Light", "Remove baked lighting from the texture.", MESHY_EX),
    _bool("autoSize", "Real Size", "Scale the model to real-world size (Origin needs it).", f"{MESHY}"),
    _enum("origin", "Origin", ("bottom", "center"), "Where the origin sits (needs Real-World Size).",
          f"{MESHY}; values: {MESHY_EX}, {COMFY}"),
    _bool("imageEnhancement", "Enhance", "Clean up the input photo first (off for polished renders).",
          f"{MESHY}; {SKILL}"),
)


def _entries() -> tuple[Engine, ...]:
    return (
        Engine("SAM3D", "SAM 3D Objects", tasks.DEFAULT_MODEL,
               "One object of a photo, picked by its mask, placed where it stands in the photo's camera; "
               "vertex colours. The fast, cheap choice for rebuilding a scene from one photo.",
               "image+mask", 1, accepts_text=False, posed=True, pbr=False, quads=False,
               documented_price=0.0038, worst_case_price=0.0038, seed_max=tasks.MAX_SEED),
        Engine("TRELLIS2", "TRELLIS.2", "microsoft:trellis-2@4b",
               "A single cut-out image to a textured asset with PBR materials, complex topology and sharp "
               "features; billed by processing time, a few cents.",
               "image", 1, accepts_text=False, posed=False, pbr=True, quads=False,
               # Billed by processing time: its page's 0.0256 is for 1024 px textures; 4096 px costs more.
               documented_price=0.0256, worst_case_price=0.10, settings=TRELLIS_SETTINGS,
               seed_max=tasks.MAX_SEED),
        Engine("HUNYUAN_PRO", "Hunyuan 3D 3.1 Pro", "tencent:hunyuan-3d@3.1-pro",
               "Production-grade assets from a prompt or from views of the object: clean, watertight meshes "
               "with PBR materials, for games, printing and animation.",
               "images", 8, accepts_text=True, posed=False, pbr=True, quads=True,
               documented_price=None, worst_case_price=PESSIMISTIC_PRICE, settings=HUNYUAN_PRO_SETTINGS,
               checks=(_absent_when("generateType", "Geometry", "pbr"),
                       _requires("polygonType", "generateType", "LowPoly")),
               quad_when=("polygonType", "quadrilateral")),
        Engine("HUNYUAN_RAPID", "Hunyuan 3D 3.1 Rapid", "tencent:hunyuan-3d@3.1-rapid",
               "Seconds from a prompt or one image to a clean mesh with PBR materials: for prototyping and "
               "quick asset libraries, where speed beats detail.",
               "image", 1, accepts_text=True, posed=False, pbr=True, quads=False,
               documented_price=None, worst_case_price=PESSIMISTIC_PRICE, settings=HUNYUAN_RAPID_SETTINGS,
               checks=(_absent_when("geometryOnly", True, "pbr"),)),
        Engine("TRIPO", "Tripo 3D v3.1", "tripo:v3.1@0",
               "Production-ready assets from a prompt or images, with a face limit, quad meshes and smart "
               "low-poly: a fit for game pipelines where topology matters.",
               "images", 4, accepts_text=True, posed=False, pbr=True, quads=True,
               documented_price=None, worst_case_price=PESSIMISTIC_PRICE, settings=TRIPO_SETTINGS,
               seed_max=tasks.MAX_SEED, checks=(_tripo_face_limit,), quad_when=("quad", True)),
        Engine("RODIN", "Rodin Gen-2", "hyper3d:rodin@gen-2",
               "Hyper3D's 10-billion-parameter model: production meshes from a prompt or up to five views, "
               "quad or raw topology, a polygon budget, T/A pose, PBR or baked materials.",
               "images", 5, accepts_text=True, posed=False, pbr=True, quads=True,
               documented_price=None, worst_case_price=PESSIMISTIC_PRICE, settings=RODIN_SETTINGS,
               seed_max=65_535, checks=(_not_both("quality", "polyCount"), _rodin_poly_count),
               quad_when=("meshMode", "Quad")),
        Engine("MESHY", "Meshy-6", "meshy:meshy@6",
               "Clean geometry and sharp hard-surface detail from a prompt or images; low-poly, quad or "
               "triangle topology, polycount, symmetry, A/T pose: game assets and 3D printing.",
               "images", 4, accepts_text=True, posed=False, pbr=True, quads=True,
               documented_price=0.8, worst_case_price=0.8, settings=MESHY_SETTINGS,
               checks=(_not_both("polyCount", "decimation"), _requires("origin", "autoSize", True),
                       _absent_when("texture", False, "pbr"), _requires("topology", "remesh", True),
                       _requires("polyCount", "remesh", True), _requires("decimation", "remesh", True),
                       _needs_images("imageEnhancement")),
               quad_when=("topology", "quad"), max_prompt=600),
    )


ENGINES: dict[str, Engine] = {e.id: e for e in _entries()}
MAX_VIEWS = max(e.max_images for e in ENGINES.values()) - 1  # other views of an object sent with its image


def engine(id: str) -> Engine:
    """The engine with this id, in any case ("trellis2", "TRELLIS2"), or with this Runware model id."""
    text = id.strip() if isinstance(id, str) else ""
    found = ENGINES.get(text.upper()) or next((e for e in ENGINES.values() if e.model == text), None)
    if found is None:
        raise EngineError(f"Unknown engine {id!r}: the engines are " + ", ".join(e.lower() for e in ENGINES) + ".")
    return found


# --- the request ------------------------------------------------------------------------------------------


def request(
    which: Engine | str,
    *,
    model: str = "",
    image: str | None = None,
    images: list[str] | None = None,
    mask: str | None = None,
    prompt: str = "",
    seed: int | None = None,
    values: Mapping[str, Any] | None = None,
    task_uuid: str | None = None,
    number_results: int = 1,
    delivery: str = "async",
    ttl: int = 0,
    webhook_url: str = "",
    upload_endpoint: str = "",
) -> dict[str, Any]:
    """The `3dInference` task for this engine. Images are upload UUIDs, URLs or data URIs; `model` overrides the
    engine's default model id; `values` are settings by name. Anything the engine does not document, or a value
    outside its bounds, raises EngineError (SAM 3D's own checks raise Sam3dError, as `inference_task` does)."""
    spec = which if isinstance(which, Engine) else engine(which)
    given = dict(values or {})
    pictures = ([image] if image else []) + list(images or [])
    if spec.input_kind == "image+mask":
        return _sam3d_task(spec, model, pictures, mask, prompt, seed, given, task_uuid, number_results, delivery,
                           ttl, webhook_url, upload_endpoint)
    fields = _checked_settings(spec, given, len(pictures))
    task: dict[str, Any] = {
        "taskType": "3dInference",
        "taskUUID": task_uuid or tasks.new_task_uuid(),
        "model": model or spec.model,
        **_inputs_and_prompt(spec, pictures, mask, prompt),
        "numberResults": number_results,
        "outputType": "URL",
        "outputFormat": "GLB",
        "deliveryMethod": delivery,
        "includeCost": True,
    }
    for key, value in fields.items():
        task[key] = {**task.get(key, {}), **value} if isinstance(value, dict) else value
    if spec.id == "HUNYUAN_RAPID" and given.get("geometryOnly") is True:
        del task["outputFormat"]  # its page: with geometryOnly true, outputFormat cannot be used
    if seed is not None:
        task["seed"] = _checked_seed(spec, seed)
    _add_delivery_options(task, number_results, ttl, webhook_url, upload_endpoint)
    return task


def _sam3d_task(spec: Engine, model: str, pictures: list[str], mask: str | None, prompt: str, seed: int | None,
                given: dict[str, Any], task_uuid: str | None, number_results: int, delivery: str, ttl: int,
                webhook_url: str, upload_endpoint: str) -> dict[str, Any]:
    if given:
        raise EngineError(f"{spec.label} takes no settings (given: {', '.join(given)}).")
    if len(pictures) != 1 or not mask:
        raise EngineError(f"{spec.label} takes exactly one image and its mask.")
    return tasks.inference_task(image=pictures[0], mask=mask, prompt=prompt, model=model or spec.model, seed=seed,
                                number_results=number_results, delivery=delivery, ttl=ttl, webhook_url=webhook_url,
                                upload_endpoint=upload_endpoint, task_uuid=task_uuid)


def _inputs_and_prompt(spec: Engine, pictures: list[str], mask: str | None, prompt: str) -> dict[str, Any]:
    """`inputs` (the engine's own key) or, for a text-to-3D engine given no image, `positivePrompt`."""
    if mask:
        raise EngineError(f"{spec.label} takes no mask: send the object's cut-out as its image.")
    text = prompt.strip()
    if len(pictures) > spec.max_images:
        raise EngineError(f"{spec.label} takes at most {spec.max_images} image(s), not {len(pictures)}.")
    if pictures and text:
        raise EngineError(f"{spec.label} works from a prompt or from images, not both: leave the prompt empty.")
    if pictures:
        return {"inputs": {"image": pictures[0]} if spec.input_kind == "image" else {"images": pictures}}
    if not spec.accepts_text:
        raise EngineError(f"{spec.label} needs an image.")
    if not text:
        raise EngineError(f"{spec.label} needs an image or a prompt.")
    if spec.max_prompt is not None and len(text) > spec.max_prompt:
        raise EngineError(f"{spec.label} takes a prompt of at most {spec.max_prompt} characters, "
                          f"not {len(text)}: shorten it.")
    return {"positivePrompt": text}


def _checked_settings(spec: Engine, given: Mapping[str, Any], image_count: int) -> dict[str, Any]:
    """The fields the settings given by name are sent as (nested by their key paths, e.g. {"settings": {...}}),
    each checked against its bounds, then against the engine's rules."""
    out: dict[str, Any] = {}
    for name, value in given.items():
        setting = spec.setting(name)
        problem = setting.problem(value)
        if problem:
            raise EngineError(f"{spec.label}: {setting.label} ({name}) {problem}, not {value!r}.")
        _put(out, setting.key, value)
    for check in spec.checks:
        problem = check(given, image_count)
        if problem:
            raise EngineError(f"{spec.label}: {problem}")
    return out


def _put(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value


def _checked_seed(spec: Engine, seed: int) -> int:
    if spec.seed_max is None:
        raise EngineError(f"{spec.label} takes no seed.")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= spec.seed_max:
        raise EngineError(f"{spec.label}: the seed must be a whole number from 0 to {spec.seed_max}, not {seed!r}.")
    return seed


def _add_delivery_options(task: dict[str, Any], number_results: int, ttl: int, webhook_url: str,
                          upload_endpoint: str) -> None:
    """The same limits and optional fields `tasks.inference_task` applies (every model's schema lists them): it
    is asked, on a throwaway task, rather than its checks copied here."""
    probe = tasks.inference_task(image="-", mask="-", prompt="-", number_results=number_results, ttl=ttl,
                                 webhook_url=webhook_url, upload_endpoint=upload_endpoint)
    for key in ("ttl", "webhookURL", "uploadEndpoint"):
        if key in probe:
            task[key] = probe[key]
