"""What Runware documents per model and per error: the models, their parameters and prices, the error codes."""

from __future__ import annotations

import re
from collections.abc import Callable

SAM3D = "meta:sam@3d"
MAX_SEED = 2**63 - 1
COST_PER_GENERATION = 0.0038
DOCS = "https://runware.ai/docs"
ERRORS_DOC = f"{DOCS}/platform/errors"
SAM3D_DOC = f"{DOCS}/models/meta-sam-3d-objects"


def _b() -> Callable[[object], bool]:
    return lambda v: isinstance(v, bool)


def int_in(low: int, high: int) -> Callable[[object], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _e(*values: object) -> Callable[[object], bool]:
    return lambda v: any(v == c and type(v) is type(c) for c in values)


# The other image-to-3D models on 3dInference, as their pages (docs/engines.md gives each source) describe them,
# written apart from client/engines.py so each checks the other: the input key and how many images, whether a
# prompt alone may drive it, a seed, the settings it documents (any other is refused: unsupportedParameter), and
# what a result costs here.
ENGINE_MODELS = {
    "microsoft:trellis-2@4b": {"input": "image", "max": 1, "text": False, "seed": True, "cost": 0.0256,
                               "settings": {"textureSize": lambda v: int_in(1024, 4096)(v) and v % 1024 == 0,
                                            "decimationTarget": int_in(100_000, 1_000_000),
                                            "resolution": _e(512, 1024, 1536), "remesh": _b()}},
    "tencent:hunyuan-3d@3.1-pro": {"input": "images", "max": 8, "text": True, "seed": False, "cost": 0.3,
                                   "settings": {"generateType": _e("Normal", "LowPoly", "Geometry", "Sketch"),
                                                "pbr": _b(), "polygonType": _e("triangle", "quadrilateral"),
                                                "faceCount": int_in(3_000, 1_500_000)}},
    "tencent:hunyuan-3d@3.1-rapid": {"input": "image", "max": 1, "text": True, "seed": False, "cost": 0.15,
                                     "settings": {"pbr": _b(), "geometryOnly": _b()}},
    "tripo:v3.1@0": {"input": "images", "max": 4, "text": True, "seed": True, "cost": 0.3,
                     "settings": {"faceLimit": int_in(500, 20_000), "quad": _b(), "texture": _b(), "pbr": _b(),
                                  "textureQuality": _e("standard", "detailed"),
                                  "geometryQuality": _e("standard", "detailed"), "autoSize": _b(),
                                  "orientation": _e("default", "align_image"), "smartLowPoly": _b(),
                                  "generateParts": _b()}},
    "hyper3d:rodin@gen-2": {"input": "images", "max": 5, "text": True, "seed": True, "seed_max": 65_535,
                            "cost": 0.4,
                            "settings": {"meshMode": _e("Quad", "Raw"), "polyCount": int_in(500, 1_000_000),
                                         "quality": _e("high", "medium", "low", "extra-low"),
                                         "material": _e("PBR", "Shaded", "All"), "taPose": _b(),
                                         "hdTexture": _b()}},
    "meshy:meshy@6": {"input": "images", "max": 4, "text": True, "seed": False, "cost": 0.8,
                      "settings": {"meshType": _e("standard", "lowpoly"), "topology": _e("quad", "triangle"),
                                   "polyCount": int_in(100, 300_000), "decimation": int_in(1, 4), "remesh": _b(),
                                   "symmetry": _e("auto", "on", "off"), "pose": _e("a-pose", "t-pose"),
                                   "texture": _b(), "pbr": _b(), "hdTexture": _b(), "removeLighting": _b(),
                                   "autoSize": _b(), "imageEnhancement": _b(),
                                   "origin": _e("bottom", "center")}},
}
ENGINE_KEYS = {"taskType", "taskUUID", "model", "positivePrompt", "inputs", "numberResults", "outputType",
               "outputFormat", "deliveryMethod", "includeCost", "seed", "ttl", "webhookURL", "uploadEndpoint",
               "settings"}
REMBG_MODELS = {"runware:109@1", "bria:2@1", *(f"runware:112@{i}" for i in range(1, 11))}
REMBG_MASK_MODELS = {"runware:109@1"}  # the models whose docs list settings.returnOnlyMask (RemBG v1.4)
REMBG_DOC = f"{DOCS}/models/rembg-v1-4"
# Caption models (their pages, and the SDK's curated models): the model pages' `caption` task with inputs.image,
# or the utility page's older `imageCaption` with inputImage. Either way the answer says "imageCaption".
CAPTION_MODELS = {"runware:150@1": 0.0019, "runware:150@2": 0.0019, "runware:151@1": 0.0019,
                  "runware:152@1": 0.0026, "runware:152@2": 0.0019}
CAPTION_KEYS = {"taskType", "taskUUID", "model", "prompt", "inputs", "inputImage", "deliveryMethod", "includeCost",
                "webhookURL"}
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
TRANSIENT_CODES = {401: "invalidApiKey", 402: "insufficientCredits", 403: "insufficientPermissions",
                   404: "notFound", 408: "timeout", 429: "rateLimitExceeded",
                   502: "serviceUnavailable", 503: "serviceUnavailable", 504: "serviceUnavailable"}
TASK_ERROR_MESSAGES = {
    "timeoutProvider": "The provider did not answer in time.",
    "contentPolicyViolation": "The input was flagged by the content policy.",
    "inferenceError": "Inference failed for this task.",
}
