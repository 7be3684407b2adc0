"""A job's request, built on the main thread from the preferences (key, endpoint, limits, network) and the
job's own fields, with its money reserved before anything can be sent (client/money.py)."""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bpy

from ... import preferences
from ...client import JobRequest, Sam3dError, engines
from ...client.errors import Code
from ...client.jobs import CaptionRequest, engine_task
from ...client.money import Limit, Reservation
from ...client.tasks import CAPTION_MODEL
from .runner import RUNNER


def user_agent() -> str:
    """`sam3d-blender/<version> Blender/<version>`: read here, on the main thread (bpy.app is not thread-safe)."""
    try:
        with open(Path(__file__).parents[2] / "blender_manifest.toml", "rb") as f:
            version = tomllib.load(f).get("version", "0")
    except OSError:
        version = "0"
    return f"sam3d-blender/{version} Blender/{bpy.app.version_string.split()[0]}"


def network(context: bpy.types.Context | None = None) -> dict[str, Any]:
    """What every request of the add-on needs to reach the network: endpoint, timeouts, proxy, CA bundle."""
    prefs = preferences.get(context)
    return {"api_url": prefs.api_url.strip(), "request_timeout": prefs.request_timeout, "user_agent": user_agent(),
            "proxy": prefs.proxy.strip(), "ca_bundle": bpy.path.abspath(prefs.ca_bundle.strip())
            if prefs.ca_bundle.strip() else ""}


def reserve(context: bpy.types.Context, task_type: str, model: str, results: int = 1,
            limits: tuple[Limit, ...] = (), floor: float = 0.0) -> Reservation:
    """Hold the worst-case price against the session's limit (and any other), or raise Sam3dError
    `spendingLimit` naming the limit that would be crossed. `floor`: an engine's own worst case."""
    RUNNER.session_limit.set(preferences.get(context).session_budget)
    return RUNNER.ledger.reserve(task_type, model, results, [RUNNER.session_limit, *limits], floor=floor)


def price_of_press(context: bpy.types.Context, engine_id: str, jobs: int, results: int = 1,
                   caption: bool = False) -> float:
    """What one press may cost at most: its jobs at the engine's worst case (and their captions)."""
    prefs = preferences.get(context)
    spec = engines.ENGINES[engine_id]
    cost = RUNNER.ledger.estimate("3dInference", preferences.engine_model(prefs, spec.id), jobs * results,
                                  floor=spec.worst_case_price)
    if caption:
        cost += RUNNER.ledger.estimate("caption", prefs.caption_model.strip() or CAPTION_MODEL, jobs)
    return cost


def job_request(context: bpy.types.Context, *, paid: bool = True, limits: tuple[Limit, ...] = (),
                caption: Callable[[], bytes] | None = None, **fields: Any) -> JobRequest:
    """A request with the preferences' key, endpoint, model and limits; `fields` add the job's own. A paid
    request (not a Resume) holds its reservation from here on, and so does its caption when `caption` (the
    cut-out's PNG, made on the worker) is given: a caption is asked only with a new task."""
    prefs = preferences.get(context)
    destinations = {"webhook_url": prefs.webhook_url.strip(), "upload_endpoint": prefs.upload_endpoint.strip()}
    if not all(preferences.is_secure_destination(url, prefs.api_url.strip()) for url in destinations.values() if url):
        raise Sam3dError(Code.INSECURE_HOOK)
    history = RUNNER.history
    spec = engines.ENGINES.get(str(fields.get("engine", "SAM3D")), engines.ENGINES["SAM3D"])
    fields["engine"] = spec.id
    request = JobRequest(
        api_key=preferences.api_key(prefs), result_dir=preferences.result_folder(prefs),
        model=preferences.engine_model(prefs, spec.id),
        typical_seconds=history.typical_seconds() if history is not None else None,
        job_timeout=prefs.job_timeout, max_download_bytes=prefs.max_download_mb * 1024 * 1024,
        max_triangles=prefs.max_triangles, **destinations, **network(context), **fields)
    if not request.resume:  # a setting the engine does not take is a sentence now, before anything is held
        engine_task(request, "" if request.text_only else "image", "mask", request.task_uuid,
                    ["view"] * len(request.view_names))
    if paid and not request.resume:
        request.reservation = reserve(context, "3dInference", request.model, request.number_results, limits,
                                      floor=spec.worst_case_price)
        if caption is not None:
            model = prefs.caption_model.strip() or CAPTION_MODEL
            try:
                held = reserve(context, "caption", model, 1, limits)
            except Sam3dError:
                request.reservation.release()  # nothing is sent: neither is held
                raise
            request.caption = CaptionRequest(model, caption, reservation=held)
    return request


def fingerprint(photo: bytes | str, mask: bytes | str, **parameters: Any) -> str:
    """What makes two requests identical: the photo's and the mask's pixels (or digests), the seed, the model and
    the parameters. A second request with the same fingerprint while the first is in flight is a double click."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (photo, mask):
        digest.update(part if isinstance(part, bytes) else part.encode())
    digest.update(json.dumps(parameters, sort_keys=True, default=str).encode())
    return digest.hexdigest()
