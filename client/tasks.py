"""Task payloads and a tolerant reading of every response shape `runware-api.md` admits.

Nothing here does I/O: the functions take and return plain data, so each documented shape is tested plainly.
"""

from __future__ import annotations

import base64
import binascii
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

from .errors import Code, Sam3dError
from .money import checked as checked_cost

DEFAULT_MODEL = "meta:sam@3d"
MAX_SEED = 2**63 - 1
PROCESSING_WORDS = {"processing", "pending", "queued", "in_progress"}
ERROR_WORDS = {"error", "failed", "failure"}


@dataclass
class Generation:
    """One result of a task: a GLB at a URL, or inline bytes."""

    task_uuid: str
    index: int
    url: str | None = None
    uuid: str | None = None
    data: bytes | None = None
    seed: int | None = None
    cost: float | None = None


@dataclass
class TaskState:
    """What one answer says about one task."""

    task_uuid: str
    results: list[Generation] = field(default_factory=list)
    errors: list[Sam3dError] = field(default_factory=list)
    processing: bool = False
    progress: int | None = None
    acknowledged: bool = False


def new_task_uuid() -> str:
    return str(uuid.uuid4())


def data_uri_png(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def inference_task(
    *,
    image: str,
    mask: str,
    prompt: str,
    model: str = DEFAULT_MODEL,
    seed: int | None = None,
    number_results: int = 1,
    delivery: str = "async",
    ttl: int = 0,
    webhook_url: str = "",
    upload_endpoint: str = "",
    task_uuid: str | None = None,
) -> dict[str, Any]:
    """A `3dInference` task. `image`/`mask` are an upload UUID, a URL or a data URI."""
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise Sam3dError(Code.INVALID_SEED, f"The seed must be between 0 and {MAX_SEED}.", parameter="seed")
    if not 1 <= number_results <= 4:
        raise Sam3dError(Code.INVALID_NUMBER_RESULTS, "Between 1 and 4 results can be asked for.")
    if ttl and ttl < 60:
        raise Sam3dError(Code.INVALID_TTL, "The result lifetime (ttl) must be at least 60 seconds.")
    task: dict[str, Any] = {
        "taskType": "3dInference",
        "taskUUID": task_uuid or new_task_uuid(),
        "model": model,
        # The JSON schema requires it even though one page calls it optional: never send an empty one.
        "positivePrompt": prompt.strip() or "the object",
        "inputs": {"image": image, "mask": mask},
        "numberResults": number_results,
        "outputType": "URL",
        "outputFormat": "GLB",
        "deliveryMethod": delivery,
        "includeCost": True,
    }
    if seed is not None:
        task["seed"] = seed
    if ttl:
        task["ttl"] = ttl
    if webhook_url:
        task["webhookURL"] = webhook_url
    if upload_endpoint:
        task["uploadEndpoint"] = upload_endpoint
    return task


def upload_task(png: bytes, task_uuid: str | None = None) -> dict[str, Any]:
    return {"taskType": "imageUpload", "taskUUID": task_uuid or new_task_uuid(), "image": data_uri_png(png)}


REMBG_MODEL = "runware:109@1"  # RemBG 1.4: the model whose page documents a mask-only output (returnOnlyMask)


def remove_background_task(image: str, *, mask_only: bool = True, model: str = REMBG_MODEL) -> dict[str, Any]:
    """A sync `removeBackground` task: the answer is the object's mask (white on black) with `mask_only`, else
    a cut-out PNG whose alpha is the mask."""
    task: dict[str, Any] = {"taskType": "removeBackground", "taskUUID": new_task_uuid(), "model": model,
                            "inputs": {"image": image}, "outputType": "base64Data", "outputFormat": "PNG",
                            "deliveryMethod": "sync", "includeCost": True}
    if mask_only:
        task["settings"] = {"returnOnlyMask": True}
    return task


def cutout_of(body: Any, task_uuid: str) -> tuple[bytes | None, str | None, float | None]:
    """(PNG bytes, or else a URL to fetch them, and the cost) from a removeBackground answer."""
    items, errors = split_envelope(body)
    for err in errors:
        if err.get("taskUUID") in (None, task_uuid):
            raise error_from(err)
    for item in items:
        if item.get("taskUUID") not in (None, task_uuid):
            continue
        inline = _inline_bytes({"base64": item.get("imageBase64Data"), "dataURI": item.get("imageDataURI")})
        url = item.get("imageURL") if isinstance(item.get("imageURL"), str) else None
        if inline or url:
            return inline, url, checked_cost(item.get("cost"))
    raise Sam3dError(Code.BAD_RESPONSE, "The background removal answer held no image.")


CAPTION_MODEL = "runware:152@2"  # Qwen2.5-VL 7B: its page documents a prompt and the `caption` task
CAPTION_PROMPT = ("In one short sentence, say what the single object shown is: its kind, its material and its colour. "
                  "Do not describe the background.")


def caption_task(image: str, *, model: str = CAPTION_MODEL, prompt: str = CAPTION_PROMPT,
                 task_uuid: str | None = None) -> dict[str, Any]:
    """A sync `caption` task as the model pages write it (`inputs.image`; the older utility page's `imageCaption`
    with `inputImage` is the same task). The answer's `text` is the caption."""
    return {"taskType": "caption", "taskUUID": task_uuid or new_task_uuid(), "model": model, "prompt": prompt,
            "inputs": {"image": image}, "deliveryMethod": "sync", "includeCost": True}


def caption_of(body: Any, task_uuid: str) -> tuple[str, float | None]:
    """(the caption, its cost) from a caption answer, whatever its items call their task type."""
    items, errors = split_envelope(body)
    for err in errors:
        if err.get("taskUUID") in (None, task_uuid):
            raise error_from(err)
    for item in items:
        text = item.get("text")
        if item.get("taskUUID") in (None, task_uuid) and isinstance(text, str) and text.strip():
            return text, checked_cost(item.get("cost"))
    raise Sam3dError(Code.BAD_RESPONSE, "The caption answer held no text.")


def account_task() -> dict[str, Any]:
    return {"taskType": "accountManagement", "taskUUID": new_task_uuid(), "operation": "getDetails"}


def account_of(body: Any, task_uuid: str) -> dict[str, Any]:
    """The account's balance (USD) and name from an `accountManagement` getDetails answer."""
    items, errors = split_envelope(body)
    for err in errors:
        raise error_from(err)
    for item in items:
        if item.get("taskUUID") in (None, task_uuid):
            balance = _as_float(item.get("balance"))
            return {"balance": balance if balance is not None and math.isfinite(balance) else None,
                    "organization": str(item.get("organizationName") or "")[:200]}
    raise Sam3dError(Code.BAD_RESPONSE, "The account answer held no account.")


def poll_task(task_uuid: str) -> dict[str, Any]:
    return {"taskType": "getResponse", "taskUUID": task_uuid}


# --- reading answers -------------------------------------------------------------------------------------


def split_envelope(body: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(items, errors) from any documented envelope: `data` as array or object, `errors`, legacy `error`,
    a bare error object, and errors carried inside `data` as `{"status": "error", "error": {...}}`."""
    items: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    if isinstance(body, list):
        body = {"data": body}
    if not isinstance(body, dict):
        raise Sam3dError(Code.BAD_RESPONSE, "The answer was not a JSON object.")
    data = body.get("data")
    if isinstance(data, dict):
        data = [data]
    for item in data or []:
        if not isinstance(item, dict):
            continue
        inner = item["error"] if isinstance(item.get("error"), dict) else item
        if str(item.get("status", "")).lower() in ERROR_WORDS or inner is not item:
            errors.append({**inner, "taskUUID": inner.get("taskUUID", item.get("taskUUID")),
                           "resultIndex": item.get("resultIndex")})
        else:
            items.append(item)
    raw_errors = body.get("errors")
    if isinstance(raw_errors, dict):
        raw_errors = [raw_errors]
    errors.extend(e for e in raw_errors or [] if isinstance(e, dict))
    if isinstance(body.get("error"), dict):
        errors.append(body["error"])
    if "data" not in body and "errors" not in body and "code" in body:
        errors.append(body)  # a bare error object
    return items, errors


def error_from(obj: dict[str, Any], status: int | None = None) -> Sam3dError:
    """The error an error object describes; its texts bounded (a server may send megabytes in any of them)."""
    code = str(obj.get("code") or obj.get("error") or "unknown")[:100]
    parameter = obj.get("parameter")
    if isinstance(parameter, list):
        parameter = ", ".join(str(p) for p in parameter[:20])
    task_uuid = obj.get("taskUUID")
    return Sam3dError(
        code,
        str(obj.get("message") or "")[:1000],
        status=status,
        task_uuid=task_uuid[:100] if isinstance(task_uuid, str) else None,
        parameter=str(parameter)[:200] if parameter else None,
    )


def task_state(body: Any, task_uuid: str, status: int | None = None) -> TaskState:
    """Everything one answer says about `task_uuid`; errors with no task are the request's and count too."""
    items, errors = split_envelope(body)
    state = TaskState(task_uuid)
    for item in items:
        if item.get("taskUUID") != task_uuid:
            continue
        state.acknowledged = True
        word = str(item.get("status", "")).lower()
        if word in PROCESSING_WORDS:
            state.processing = True
            if isinstance(item.get("progress"), (int, float)):
                state.progress = int(item["progress"])
        else:
            _add_generations(state, item)
    for err in errors:
        if err.get("taskUUID") in (None, task_uuid):
            state.errors.append(error_from(err, status))
    return state


def _add_generations(state: TaskState, item: dict[str, Any]) -> None:
    """Results of one success item: several `outputs.files`, or the `model*` fields. Generations are told
    apart by `resultIndex`, then by file UUID/URL; two items that differ in `resultIndex` are never merged."""
    base = item.get("resultIndex")
    seed = _as_int(item.get("seed"))
    files = (item.get("outputs") or {}).get("files") if isinstance(item.get("outputs"), dict) else None
    entries: list[dict[str, Any]] = [f for f in files or [] if isinstance(f, dict)]
    if not entries and any(k in item for k in ("modelURL", "modelBase64Data", "modelDataURI")):
        entries = [{"uuid": item.get("modelUUID"), "url": item.get("modelURL"),
                    "base64": item.get("modelBase64Data"), "dataURI": item.get("modelDataURI")}]
    cost = checked_cost(item.get("cost"), len(entries))  # an item's cost covers its files: NaN, -1 or 1e309 is none
    for offset, entry in enumerate(entries):
        # The server's index tells generations apart; ours numbers the files. A missing, repeated or absurd
        # index (a string, negative, past 32 bits) still leaves every paid result its own file.
        index = (base if isinstance(base, int) and not isinstance(base, bool) and 0 <= base < 2**16
                 else len(state.results)) + offset
        gen = Generation(state.task_uuid, index, url=_text(entry.get("url")), uuid=_text(entry.get("uuid")),
                         data=_inline_bytes(entry), seed=_first(_as_int(entry.get("seed")), seed),
                         cost=_first(checked_cost(entry.get("cost")), cost if offset == 0 else None))
        if gen.url is None and gen.data is None:
            continue
        if not any(_same(gen, old) for old in state.results):
            state.results.append(gen)


def _same(a: Generation, b: Generation) -> bool:
    if a.index != b.index:
        return False
    return (a.uuid or a.url) == (b.uuid or b.url)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _inline_bytes(entry: dict[str, Any]) -> bytes | None:
    """Inline bytes (base64 or a data URI), or None when absent or not valid base64."""
    text = _text(entry.get("base64")) or _text(entry.get("dataURI"))
    if not text:
        return None
    if text.startswith("data:"):
        text = text.split(",", 1)[-1]
    try:
        return base64.b64decode("".join(text.split()), validate=True) or None
    except (binascii.Error, ValueError):
        return None


def upload_uuid(body: Any, task_uuid: str) -> str:
    """The UUID an `imageUpload` (or `mediaStorage`) answer gives, `data` as array or object."""
    items, errors = split_envelope(body)
    for err in errors:
        raise error_from(err)
    for item in items:
        if item.get("taskUUID") in (None, task_uuid):
            found = item.get("imageUUID") or item.get("mediaUUID")
            if found:
                return str(found)
    raise Sam3dError(Code.BAD_RESPONSE, "The image upload answer held no image UUID.")


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None
