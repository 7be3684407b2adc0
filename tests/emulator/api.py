"""The `Emulator`: the API host (authentication, validation, tasks and their results, uploads,
removeBackground, captions, webhooks and upload endpoints), with the FILE host and the hostile answers mixed in."""

from __future__ import annotations

import base64
import contextlib
import json
import math
import random
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from urllib.parse import urlsplit

from .files import File, FileHost
from .hostile import HUGE_RESULT_INDEXES, Faults, HostileSender, Style
from .images import Shape, cutout_png, decode_base64, image_size, mask_png, sniff_image
from .models import (
    CAPTION_KEYS,
    CAPTION_MODELS,
    COST_PER_GENERATION,
    ENGINE_KEYS,
    ENGINE_MODELS,
    ERRORS_DOC,
    MAX_SEED,
    REMBG_DOC,
    REMBG_MASK_MODELS,
    REMBG_MODELS,
    SAM3D,
    SAM3D_DOC,
    TASK_ERROR_MESSAGES,
    TRANSIENT_CODES,
    UUID_RE,
    int_in,
)
from .plumbing import ApiHandler, FileHandler, Handler, Headers, Recorded, Server

try:
    from .. import glb
except ImportError:  # imported with tests/ on sys.path
    import glb


@dataclass
class Generation:
    """One result of a 3dInference task."""

    index: int
    seed: int
    done_at: float
    error: str | None = None  # the error code when this generation fails
    file_uuid: str = ""
    url: str = ""


@dataclass
class TaskState:
    task_type: str
    payload: dict
    created: float
    results: list = field(default_factory=list)  # Generation (3dInference) or ready item dicts
    submissions: int = 1
    upload_results: list = field(default_factory=list)  # uploadEndpoint PUTs: {"url", "status"|"error"}
    webhook_results: list = field(default_factory=list)  # webhook POSTs: {"url", "attempts", "ok"}


class ApiError(Exception):
    """A task or request failure; becomes one error object."""

    def __init__(self, status: int, code: str, message: str, parameter=None, **extra):
        super().__init__(message)
        self.status, self.code, self.parameter, self.extra = status, code, parameter, extra

    def to_json(self, task: dict | None = None) -> dict:
        err = {"code": self.code, "message": str(self)}
        if self.parameter is not None:
            err["parameter"] = self.parameter
        err.update(self.extra)
        if task:
            err["taskType"] = task.get("taskType")
            err["taskUUID"] = task.get("taskUUID")
        err.setdefault("documentation", ERRORS_DOC)
        return err


@dataclass
class _Outcome:
    """What one API request produces, gathered task by task."""

    data: list = field(default_factory=list)
    errors: list = field(default_factory=list)  # (http status, error object)
    sync: list = field(default_factory=list)  # 3dInference TaskStates to answer after processing
    data_object: bool = False  # answer "data" as a single object (upload style)
    drop: bool = False


class Emulator(FileHost, HostileSender):
    """Two servers (API and FILE host) and everything they remember.

    Besides `faults` and `style` (both restored by reset()), tests may set: `result_bytes`, `result_factory`,
    `balance` (accountManagement, default 12.5), `rembg_shape` (the object removeBackground finds, a `Shape`) and
    `caption_text` (what a caption says: a text, or a function of the task).
    They may read: `requests`, `file_requests`, `tasks`, `uploads`, `billed()`, `file_bytes_sent` (body bytes the
    FILE host sent), `trickle_bytes_sent` (bytes sent by trickling answers) and `trickle_open` (trickling or
    stalled answers whose client has not hung up yet: a live count, never reset).
    """

    def __init__(self, api_key="test-key", processing_time=0.3, result_glb=None, host="127.0.0.1",
                 verbose=False, tls: tuple[str, str] | None = None):
        self.api_key = api_key
        self.processing_time = processing_time
        self.result_bytes = Path(result_glb).read_bytes() if result_glb else glb.canonical_glb()
        # Tests may make each result from its task (e.g. a shape matching the mask): (task, index) -> GLB bytes.
        self.result_factory: Callable[[dict, int], bytes] | None = None
        self.engine_result = glb.pbr_glb()  # what the other engines send: a textured PBR mesh
        self.host = host
        self.verbose = verbose
        self.tls = tls  # (certificate file, key file): serve both hosts over HTTPS (see tests/tls.py)
        self.organization_uuid = str(uuid.uuid4())
        self.api_url = self.files_url = ""
        self.lock = threading.RLock()
        self._servers: list[Server] = []
        self._threads: list[threading.Thread] = []
        self._timers: list[threading.Timer] = []
        self._stopping = threading.Event()
        self.trickle_open = 0
        self.reset()

    # ---- lifecycle

    def start(self, port: int = 0, files_port: int = 0, tls: tuple[str, str] | None = None) -> Emulator:
        """Listen; with `tls` (or the constructor's) both hosts speak HTTPS only."""
        self._stopping.clear()
        self.tls = tls or self.tls
        context = None
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
        api = Server((self.host, port), ApiHandler, self, context)
        files = Server((self.host, files_port), FileHandler, self, context)
        # A different host NAME for files, so "the key went to a second host" is observable.
        files_host = "localhost" if self.host == "127.0.0.1" else self.host
        scheme = "https" if context else "http"
        self.api_url = f"{scheme}://{self.host}:{api.server_address[1]}/v1"
        self.files_url = f"{scheme}://{files_host}:{files.server_address[1]}"
        for server in (api, files):
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                      daemon=True, name="runware-emulator")
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes sync submissions that are waiting, and trickling or stalled answers
        with self.lock:
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
        for server in self._servers:
            server.shutdown()
            for conn in list(server.connections):  # idle keep-alive connections would linger
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=1)
        self._servers, self._threads = [], []

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def reset(self) -> None:
        self.result_factory = None  # a test's own results end with it
        with self.lock:
            for timer in getattr(self, "_timers", []):
                timer.cancel()
            self._timers = []
            self.faults = Faults()
            self.style = Style()
            self.requests: list[Recorded] = []
            self.file_requests: list[Recorded] = []
            self.tasks: dict[str, TaskState] = {}
            self.uploads: dict[str, bytes] = {}
            self._files: dict[str, File] = {}
            self._padded: tuple[int | None, bytes, bytes] = (None, b"", b"")
            self._forgotten: set[str] = set()
            self.balance = 12.5  # USD, what accountManagement getDetails reports
            self.rembg_shape: Shape = None  # the object removeBackground finds (None: a centred ellipse)
            # What a caption says: a text, or made from the task (a test's own captions)
            self.caption_text: str | Callable[[dict], object] = "A wooden chair with a red cushion."
            self.file_bytes_sent = 0
            self.trickle_bytes_sent = 0

    def billed_tasks(self) -> int:
        with self.lock:
            return sum(1 for t in self.tasks.values() if t.task_type == "3dInference")

    def billed(self, task_type: str = "3dInference") -> int:
        """How many tasks of `task_type` were accepted (and so billed): "3dInference", "removeBackground"."""
        names = {"caption", "imageCaption"} if task_type == "caption" else {task_type}
        with self.lock:
            return sum(1 for t in self.tasks.values() if t.task_type in names)

    def forget(self, task_uuid: str) -> None:
        """From now on getResponse answers taskFailedOrNotFound for this task, as Runware does once its
        retention period is over (the task still counts as billed, and its taskUUID still conflicts)."""
        with self.lock:
            self._forgotten.add(task_uuid)

    def finish(self) -> None:
        """Every 3dInference task finishes now (its results listed, its files served): a test that needs the
        server to be done waits on nothing."""
        now = time.monotonic()
        with self.lock:
            for state in self.tasks.values():
                for gen in state.results if state.task_type == "3dInference" else []:
                    gen.done_at = min(gen.done_at, now)
            for stored in self._files.values():
                stored.available_at = min(stored.available_at, now)

    # ---- API host

    def _serve_api(self, h: Handler) -> None:
        raw = h.read_body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        rec = Recorded(h.command, h.path, Headers(h.headers.items()), body, time.monotonic())
        with self.lock:
            self.requests.append(rec)
        answer = self._answer(rec)
        if answer is None:  # accepted, then the connection "drops": no status line at all
            h.close_connection = True
            return
        status, payload, headers = answer
        rec.status, rec.response = status, payload
        data = b"" if payload is None else json.dumps(payload).encode()
        if isinstance(self.faults.cost, str):  # raw JSON text in place of the cost (a number no float holds)
            data = data.replace(json.dumps(self.faults.cost).encode(), self.faults.cost.encode())
        headers = dict(headers)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        polls = isinstance(body, list) and any(
            isinstance(t, dict) and t.get("taskType") in ("getResponse", "getTaskDetails") for t in body)
        if self.faults.gzip_bomb == "api" and status == 200 and polls:
            self._send_bomb(h, "application/json", file_host=False)
        elif self.faults.trickle and self.faults.trickle_api:
            self._send_trickled(h, status, data, headers, file_host=False)
        else:
            h.send(status, data, headers)

    def _answer(self, rec: Recorded):
        """(status, JSON body or None, headers), or None to drop the connection."""
        with self.lock:
            if self.faults.status_sequence:
                return self._transient(self.faults.status_sequence.pop(0))
        if urlsplit(rec.path).path.rstrip("/") != "/v1":
            return self._request_error(ApiError(404, "notFound", "Unknown endpoint: use POST /v1."))
        if rec.method != "POST":
            return self._request_error(ApiError(405, "invalidMethod", "Only POST is supported."))
        tasks = rec.body
        if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
            return self._request_error(ApiError(
                400, "invalidRequestBody", "The body must be a JSON array of task objects."))
        tasks, failure = self._authenticate(rec.headers, tasks)
        if failure:
            return failure
        out = _Outcome()
        for task in tasks:
            self._dispatch(task, out)
        if out.drop:
            return None
        if out.sync:  # sync delivery holds the request open until the work is done
            wait = max(g.done_at for t in out.sync for g in t.results) - time.monotonic()
            self._stopping.wait(max(wait, 0))
            for state in out.sync:
                data, errors = self._render(state, "sync")
                out.data += data
                out.errors += [(200, e) for e in errors]
        return self._compose(out)

    def _transient(self, status: int):
        code = TRANSIENT_CODES.get(status, "internalServerError" if status >= 500 else "invalidRequest")
        err = ApiError(status, code, f"Emulated HTTP {status}: try again later.")
        value, form = self.faults.retry_after, self.style.retry_after_form
        status, body, headers = self._request_error(err)
        if form == "none":
            return status, body, headers
        if form == "date":  # HTTP-dates have whole seconds: round up, so the wait is never shorter
            return status, body, {**headers, "Retry-After": formatdate(math.ceil(time.time() + value), usegmt=True)}
        return status, body, {**headers, "Retry-After": f"{value:g}"}

    def _request_error(self, err: ApiError, task: dict | None = None):
        return err.status, self._envelope([err.to_json(task)]), {}

    def _envelope(self, errors: list[dict]) -> dict:
        form = self.style.error_envelope
        if form == "bare":
            return errors[0]
        if form == "error":  # legacy: {"error": {...}, "taskUUID", "taskType"}
            first = errors[0]
            return {"error": first, **{k: first[k] for k in ("taskUUID", "taskType") if k in first}}
        return {"errors": errors}

    def _compose(self, out: _Outcome):
        errors = [e for _, e in out.errors]
        if errors and not out.data:
            status = out.errors[0][0]
            return status, (self._envelope(errors) if status >= 400 else {"errors": errors}), {}
        body: dict = {"data": out.data[0] if out.data_object and len(out.data) == 1 else out.data}
        if errors:  # a 2xx that is still an error for some tasks
            body["errors"] = errors
        return 200, body, {}

    def _authenticate(self, headers: Headers, tasks: list):
        """(tasks without the authentication element, failure answer or None)."""
        first = next((t for t in tasks if t.get("taskType") != "authentication"), None)
        if tasks and tasks[0].get("taskType") == "authentication":
            key, tasks = tasks[0].get("apiKey"), tasks[1:]
        else:
            auth = headers.get("Authorization") or ""
            key = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        if not key:
            return tasks, self._request_error(
                ApiError(401, "missingApiKey", "No API key: send Authorization: Bearer <key>."), first)
        if key != self.api_key:  # never echo the key back
            if self.faults.empty_401:
                return tasks, (401, None, {})
            return tasks, self._request_error(ApiError(401, "invalidApiKey", "Invalid API key."), first)
        return tasks, None

    def _dispatch(self, task: dict, out: _Outcome) -> None:
        handlers = {
            "accountManagement": self._account_management,
            "3dInference": self._submit_3d,
            "getResponse": self._poll,
            "getTaskDetails": self._poll,
            "imageUpload": self._image_upload,
            "mediaStorage": self._media_storage,
            "removeBackground": self._remove_background,
            "caption": self._caption,
            "imageCaption": self._caption,
        }
        task_type = task.get("taskType")
        try:
            if task_type == "authentication":
                return
            if not task_type:
                raise ApiError(400, "missingTaskType", "Every task needs a taskType.", "taskType")
            if not isinstance(task_type, str) or task_type not in handlers:
                raise ApiError(400, "invalidTaskType", f"Unsupported taskType {task_type!r}.", "taskType")
            handlers[task_type](task, out)
        except ApiError as err:
            out.errors.append((err.status, err.to_json(task)))

    # ---- tasks

    def _check_uuid(self, task: dict, name: str = "taskUUID") -> str:
        value = task.get(name)
        if value is None:
            raise ApiError(400, "missingTaskUUID", f"{name} is required.", name)
        if not isinstance(value, str) or not UUID_RE.match(value):
            raise ApiError(400, "invalidTaskUUID", f"{name} must be a UUID v4 string.", name)
        return value

    def _refuse_reuse(self, task_uuid: str) -> None:
        """A reused taskUUID is a conflict: counted, never created or billed again. Call under the lock."""
        existing = self.tasks.get(task_uuid)
        if existing:
            existing.submissions += 1
            raise ApiError(400, "conflictTaskUUID",
                           "This taskUUID was already used: poll it with getResponse.", "taskUUID")

    def _create(self, task: dict, results: list) -> TaskState:
        with self.lock:
            self._refuse_reuse(task["taskUUID"])
            state = TaskState(task["taskType"], task, time.monotonic(), results)
            self.tasks[task["taskUUID"]] = state
            return state

    def _submit_3d(self, task: dict, out: _Outcome) -> None:
        self._check_uuid(task)
        self._validate_3d(task)
        with self.lock:  # conflict, credits and creation happen atomically
            self._refuse_reuse(task["taskUUID"])
            if self.faults.insufficient_credits:
                raise ApiError(402, "insufficientCredits", "Insufficient credits: top up your balance.")
            state = self._create(task, self._generations(task))
            self._schedule_delivery(state)
            if self.faults.drop_after_submit > 0:
                self.faults.drop_after_submit -= 1
                out.drop = True
        if task.get("deliveryMethod", "async") == "sync":
            out.sync.append(state)
        elif self.style.ack_form == "item":
            out.data.append({"taskType": "3dInference", "taskUUID": task["taskUUID"]})

    def _validate_3d(self, task: dict) -> None:
        def bad(code, message, param, **extra):
            anchor = param.replace(".", "-").lower()
            return ApiError(400, code, message, param, documentation=f"{SAM3D_DOC}#request-{anchor}", **extra)

        def is_int(value):
            return isinstance(value, int) and not isinstance(value, bool)

        model = task.get("model")
        if not model:
            raise bad("missingModel", "model is required.", "model")
        if model in ENGINE_MODELS:
            return self._validate_engine(task, ENGINE_MODELS[model])
        if model != SAM3D:
            raise bad("invalidModel", f"Model {model!r} does not support 3dInference.", "model")
        prompt = task.get("positivePrompt")
        if prompt is None:
            raise bad("missingPositivePrompt", "positivePrompt is required.", "positivePrompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise bad("invalidPositivePrompt", "positivePrompt must be a non-empty string.", "positivePrompt")
        inputs = task.get("inputs")
        if not isinstance(inputs, dict):
            raise bad("missingInputs", "inputs with image and mask is required.", "inputs")
        images = {}
        for name in ("image", "mask"):
            if not inputs.get(name):
                raise bad(f"missing{name.title()}", f"inputs.{name} is required.", f"inputs.{name}")
            images[name] = self._resolve_image(inputs[name], f"inputs.{name}")
        sizes = [image_size(images[n]) for n in ("image", "mask")]
        if all(sizes) and sizes[0] != sizes[1]:  # the reference code hard-fails on this (issue #127)
            (iw, ih), (mw, mh) = sizes
            raise bad("invalidMask", f"The mask is {mw}x{mh} but the image is {iw}x{ih}: they must match.",
                      "inputs.mask")
        checks = [
            ("outputType", lambda v: v == "URL", "unsupportedParameter", {"allowedValues": ["URL"]}),
            ("outputFormat", lambda v: v == "GLB", "unsupportedParameter", {"allowedValues": ["GLB"]}),
            ("numberResults", lambda v: is_int(v) and 1 <= v <= 4, "invalidNumberResults",
             {"min": 1, "max": 4}),
            ("seed", lambda v: is_int(v) and 0 <= v <= MAX_SEED, "invalidSeed", {"min": 0, "max": MAX_SEED}),
            ("ttl", lambda v: is_int(v) and v >= 60, "invalidTtl", {"min": 60}),
            ("deliveryMethod", lambda v: v in ("async", "sync"), "invalidDeliveryMethod",
             {"allowedValues": ["async", "sync"]}),
            ("includeCost", lambda v: isinstance(v, bool), "invalidIncludeCost", {}),
            ("webhookURL", lambda v: isinstance(v, str) and v.startswith(("http://", "https://")),
             "invalidWebhookURL", {}),
            ("uploadEndpoint", lambda v: isinstance(v, str) and v.startswith(("http://", "https://")),
             "invalidUploadEndpoint", {}),
        ]
        for name, ok, code, extra in checks:
            if name in task and not ok(task[name]):
                raise bad(code, f"Invalid value for {name}: {task[name]!r}.", name, **extra)

    def _validate_engine(self, task: dict, spec: dict) -> None:
        """Another model's request: its own input key, a prompt or images (not both), only what it documents."""
        model = task["model"]

        def refuse(param, message, code="unsupportedParameter"):
            raise ApiError(400, code, message, param)

        for key in task:
            if key not in ENGINE_KEYS or (key == "seed" and not spec["seed"]):
                refuse(key, f"Parameter {key} is not supported by {model}.")
        inputs = task.get("inputs") or {}
        if not isinstance(inputs, dict) or set(inputs) - {spec["input"]}:
            refuse("inputs", f"{model} takes inputs.{spec['input']} only.")
        given = inputs.get(spec["input"])
        pictures = [given] if spec["input"] == "image" and given else list(given or [])
        if len(pictures) > spec["max"]:
            refuse(f"inputs.{spec['input']}", f"{model} takes at most {spec['max']} image(s).", "invalidInputs")
        for n, picture in enumerate(pictures):
            if not image_size(self._resolve_image(picture, f"inputs.{spec['input']}")):
                refuse(f"inputs.{spec['input']}", f"Image {n} is not an image.", "invalidImage")
        prompt = task.get("positivePrompt")
        if pictures and prompt is not None:
            refuse("positivePrompt", f"positivePrompt cannot be used with inputs on {model}.")
        if not pictures and not (spec["text"] and isinstance(prompt, str) and prompt.strip()):
            refuse("inputs", f"{model} needs inputs.{spec['input']}" + (" or a positivePrompt." if spec["text"]
                                                                         else "."), "missingInputs")
        if "seed" in task and not int_in(0, spec.get("seed_max", MAX_SEED))(task["seed"]):
            refuse("seed", f"Invalid seed for {model}.", "invalidSeed")
        settings = task.get("settings", {})
        if not isinstance(settings, dict):
            refuse("settings", "settings must be an object.", "invalidSettings")
        for name, value in settings.items():
            if name not in spec["settings"]:
                refuse(f"settings.{name}", f"settings.{name} is not supported by {model}.")
            if not spec["settings"][name](value):
                refuse(f"settings.{name}", f"Invalid value for settings.{name}: {value!r}.", "invalidSettings")
        if task.get("outputFormat", "GLB") != "GLB" or task.get("outputType", "URL") != "URL":
            refuse("outputFormat", "Only GLB at a URL is emulated.")

    def _resolve_image(self, value, parameter: str) -> bytes:
        """Bytes of an image given as upload UUID, data URI, bare base64 or URL (the documented forms)."""
        def bad(message):
            code = {"inputs.mask": "invalidMask", "media": "invalidMedia"}.get(parameter, "invalidImage")
            return ApiError(400, code, message, parameter)

        if not isinstance(value, str):
            raise bad(f"{parameter} must be a string.")
        if UUID_RE.match(value):
            with self.lock:
                data = self.uploads.get(value)
            if data is None:
                raise bad(f"No uploaded image with UUID {value}.")
        elif value.startswith(("http://", "https://")):
            data = self._fetch(value)
            if data is None:
                raise bad(f"Could not download {parameter} from its URL.")
        elif value.startswith("data:"):
            head, _, payload = value.partition(",")
            data = decode_base64(payload) if head.endswith(";base64") else None
        else:
            data = decode_base64(value)
        if not data or not sniff_image(data):
            raise bad(f"{parameter} is not a PNG, JPEG, WEBP, BMP or GIF image.")
        return data

    def _fetch(self, url: str) -> bytes | None:
        with self.lock:
            local = self._files.get(urlsplit(url).path) if url.startswith(self.files_url) else None
        if local:
            return local.data
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.read()
        except (OSError, ValueError):
            return None

    def _generations(self, task: dict) -> list[Generation]:
        n = task.get("numberResults", 1)
        seed = task.get("seed")
        if seed is None:  # unsigned 32-bit, usually >= 2**31 so 64-bit-safe handling gets exercised
            seeds = random.sample(range(2**31, 2**32), n)
        else:
            seeds = [(seed + i) % (MAX_SEED + 1) for i in range(n)]
        failing = n if self.faults.task_error else min(self.faults.fail_generations, n)
        code = self.faults.task_error or "inferenceError"
        done_at = time.monotonic() + self.processing_time
        ttl = task.get("ttl")
        gens = []
        for i, s in enumerate(seeds):
            gen = Generation(i, s, done_at, error=code if i >= n - failing else None)
            if not gen.error:
                gen.file_uuid = str(uuid.uuid4())
                gen.url = f"{self.files_url}/files/{gen.file_uuid}.glb"
                engine = task.get("model") in ENGINE_MODELS and self.result_factory is None
                data = self.result_factory(task, i) if self.result_factory else \
                    self.engine_result if engine else self.result_bytes
                self._files[f"/files/{gen.file_uuid}.glb"] = File(
                    data, "model/gltf-binary", done_at, done_at + ttl if ttl else None, engine=engine)
            gens.append(gen)
        return gens

    def _poll(self, task: dict, out: _Outcome) -> None:
        task_uuid = self._check_uuid(task)
        with self.lock:
            state = self.tasks.get(task_uuid)
            forgotten = self.faults.forget_tasks or task_uuid in self._forgotten
        if state is None or forgotten:
            raise ApiError(404, "taskFailedOrNotFound", f"No task {task_uuid}.", "taskUUID")
        data, errors = self._render(state, "poll")
        out.data += data
        out.errors += [(200, e) for e in errors]

    def _account_management(self, task: dict, out: _Outcome) -> None:
        """accountManagement getDetails, shaped like runware.ai/docs/platform/account-management."""
        self._check_uuid(task)
        operation = task.get("operation")
        if operation is None:
            raise ApiError(400, "missingOperation", "operation is required.", "operation",
                           allowedValues=["getDetails"])
        if operation != "getDetails":
            raise ApiError(400, "unsupportedParameter", f"Unknown operation {operation!r}.", "operation",
                           allowedValues=["getDetails"])
        out.data.append({
            "taskType": "accountManagement", "taskUUID": task["taskUUID"], "operation": "getDetails",
            "organizationUUID": self.organization_uuid, "organizationName": "Emulated Org",
            "AIRSource": "emulated",
            "balance": 0 if self.faults.insufficient_credits else self.balance,
            "team": [{"name": "Emulated Owner", "email": "owner@example.invalid", "roles": ["Owner"],
                      "joinedAt": "2024-01-15T10:30:00Z"}],
            # Never the key itself: a name and dates only.
            "apiKeys": [{"name": "Emulated key", "description": "The key these tests use", "enabled": True,
                         "createdAt": "2024-01-15T10:35:00Z", "lastUsedAt": "2025-01-01T00:00:00Z"}],
        })

    def _render(self, state: TaskState, mode: str) -> tuple[list, list]:
        """(data items, error objects) describing a task now; mode is "poll", "sync" or "webhook"."""
        echo = "getResponse" if mode == "poll" and self.style.echo_task_type == "getResponse" else None
        task_type = echo or state.task_type
        if state.task_type != "3dInference":
            return [self._success_status({**item, "taskType": task_type, "status": "success"})
                    for item in state.results], []
        listed = not (mode == "poll" and self.style.list_finished_only)  # list unfinished generations?
        gens: list[Generation] = state.results
        if len(gens) > 1 and self.style.multi_form == "files" and self.style.result_form == "files":
            return self._render_grouped(state, task_type, listed)
        data, errors = [], []
        for gen in gens:
            if time.monotonic() < gen.done_at:
                if listed:
                    data.append(self._processing_item(state, task_type, gen.index))
            elif gen.error:
                self._add_failure(state, task_type, gen, data, errors)
            else:
                data.append(self._success_item(state, task_type, gen.seed, [gen], gen.index))
        return data, errors

    def _render_grouped(self, state: TaskState, task_type: str, listed: bool = True) -> tuple[list, list]:
        """numberResults > 1 as one item carrying several outputs.files."""
        gens: list[Generation] = state.results
        if time.monotonic() < max(g.done_at for g in gens):
            return ([self._processing_item(state, task_type, None)] if listed else []), []
        data, errors = [], []
        ok = [g for g in gens if not g.error]
        if ok:
            data.append(self._success_item(state, task_type, ok[0].seed, ok))
        for gen in gens:
            if gen.error:
                self._add_failure(state, task_type, gen, data, errors)
        return data, errors

    def _set_index(self, item: dict, index: int | None) -> None:
        """resultIndex as Style.result_index and literal_results say."""
        form = self.style.result_index
        if index is None or form == "absent" or self.style.literal_results:
            return
        item["resultIndex"] = {"duplicate": 0, "huge": HUGE_RESULT_INDEXES[index % len(HUGE_RESULT_INDEXES)]
                               }.get(form, index)

    def _success_status(self, item: dict) -> dict:
        if not self.style.status_on_success:
            item.pop("status", None)
        return item

    def _processing_item(self, state: TaskState, task_type: str, index: int | None) -> dict:
        item = {"taskType": task_type, "taskUUID": state.payload["taskUUID"],
                "status": self.style.status_word}
        self._set_index(item, index)
        if self.style.include_progress:
            elapsed = time.monotonic() - state.created
            item["progress"] = min(99, int(100 * elapsed / max(self.processing_time, 1e-6)))
        return item

    def _success_item(self, state: TaskState, task_type: str, seed: int, gens: list[Generation],
                      index: int | None = None) -> dict:
        item = {"taskType": task_type, "taskUUID": state.payload["taskUUID"], "status": "success"}
        self._set_index(item, index)  # the SDK tells generations apart by resultIndex first
        item["seed"] = seed
        if state.payload.get("includeCost"):
            price = ENGINE_MODELS.get(state.payload.get("model"), {}).get("cost", COST_PER_GENERATION)
            item["cost"] = round(price * len(gens), 6) if self.faults.cost is None else self.faults.cost
        form = self.style.result_form
        if form == "modelURL":
            item.update(modelUUID=gens[0].file_uuid, modelURL=gens[0].url)
        elif form in ("base64", "dataURI"):
            encoded = base64.b64encode(self._result_data(gens[0])).decode()
            item["modelUUID"] = gens[0].file_uuid
            if form == "base64":
                item["modelBase64Data"] = encoded
            else:
                item["modelDataURI"] = "data:model/gltf-binary;base64," + encoded
        else:
            item["outputs"] = {"files": [{"uuid": g.file_uuid, "url": g.url} for g in gens]}
        return self._success_status(item)

    def _result_data(self, gen: Generation) -> bytes:
        """The GLB bytes of a generation, exactly as the FILE host would serve them now."""
        with self.lock:
            stored = self._files.get(urlsplit(gen.url).path)
            if stored is None or (self.result_factory is None and not stored.engine):
                return self._glb_bytes()
            return stored.data

    def _add_failure(self, state: TaskState, task_type: str, gen: Generation, data: list, errors: list):
        message = TASK_ERROR_MESSAGES.get(gen.error, f"The task failed ({gen.error}).")
        base = {"taskType": task_type, "taskUUID": state.payload["taskUUID"], "status": "error"}
        self._set_index(base, gen.index)
        if self.faults.task_error_form == "data":
            data.append({**base, "error": {"code": gen.error, "message": message}})
        else:
            errors.append({"code": gen.error, "message": message, **base, "documentation": ERRORS_DOC})

    # ---- uploads and masks

    def _store_image(self, data: bytes, kind: str = "upload") -> tuple[str, str]:
        """Keep an uploaded (or made) image; returns (uuid, URL on the file host)."""
        image_uuid = str(uuid.uuid4())
        path = f"/images/{image_uuid}.{sniff_image(data)}"
        with self.lock:
            self.uploads[image_uuid] = data
            self._files[path] = File(data, f"image/{sniff_image(data)}", kind=kind)
        return image_uuid, self.files_url + path

    def _upload_reply(self, task: dict, out: _Outcome, item: dict) -> None:
        self._create(task, [item])
        out.data.append({"taskType": task["taskType"], "taskUUID": task["taskUUID"], **item})
        out.data_object = self.style.upload_data_form == "object"

    def _image_upload(self, task: dict, out: _Outcome) -> None:
        self._check_uuid(task)
        if not task.get("image"):
            raise ApiError(400, "missingImage", "image is required.", "image")
        image_uuid, url = self._store_image(self._resolve_image(task["image"], "image"))
        self._upload_reply(task, out, {"imageUUID": image_uuid, "imageURL": url})

    def _media_storage(self, task: dict, out: _Outcome) -> None:
        self._check_uuid(task)
        operation = task.get("operation", "upload")
        if operation == "delete":
            with self.lock:
                found = self.uploads.pop(task.get("mediaUUID") or "", None)
            if found is None:
                raise ApiError(404, "mediaNotFound", "No such media.", "mediaUUID")
            self._upload_reply(task, out, {"mediaUUID": task["mediaUUID"]})
            return
        if operation != "upload":
            raise ApiError(400, "unsupportedParameter", f"Unknown operation {operation!r}.", "operation",
                           allowedValues=["upload", "delete"])
        if not task.get("media"):
            raise ApiError(400, "missingMedia", "media is required.", "media")
        media_uuid, url = self._store_image(self._resolve_image(task["media"], "media"))
        self._upload_reply(task, out, {"mediaUUID": media_uuid, "mediaURL": url})

    def _remove_background(self, task: dict, out: _Outcome) -> None:
        self._check_uuid(task)
        model = task.get("model")
        if model not in REMBG_MODELS:
            raise ApiError(400, "invalidModel" if model else "missingModel",
                           f"Model {model!r} cannot remove backgrounds.", "model")
        value = (task.get("inputs") or {}).get("image") or task.get("inputImage")
        if not value:
            raise ApiError(400, "missingImage", "inputs.image is required.", "inputs.image")
        size = image_size(self._resolve_image(value, "inputs.image"))
        if not size:
            raise ApiError(400, "invalidImage", "Unsupported image format.", "inputs.image")
        output_type = task.get("outputType", "URL")
        if output_type not in ("URL", "base64Data", "dataURI"):
            raise ApiError(400, "unsupportedParameter", "Invalid outputType.", "outputType",
                           allowedValues=["URL", "base64Data", "dataURI"])
        if task.get("outputFormat", "PNG") != "PNG":  # emulator limit: only PNG keeps the alpha we make
            raise ApiError(400, "unsupportedParameter", "Only PNG is emulated.", "outputFormat",
                           allowedValues=["PNG"])
        settings = task.get("settings", {})
        if not isinstance(settings, dict):
            raise ApiError(400, "invalidSettings", "settings must be an object.", "settings")
        only_mask = settings.get("returnOnlyMask", False)
        if not isinstance(only_mask, bool):
            raise ApiError(400, "invalidReturnOnlyMask", "settings.returnOnlyMask must be a boolean.",
                           "settings.returnOnlyMask")
        if only_mask and model not in REMBG_MASK_MODELS:
            raise ApiError(400, "unsupportedParameter", f"Model {model} does not support returnOnlyMask.",
                           "settings.returnOnlyMask", documentation=f"{REMBG_DOC}#request-settings-returnonlymask")
        png = (mask_png if only_mask else cutout_png)(*size, self.rembg_shape)
        image_uuid, url = self._store_image(png, kind="cutout")
        item = {"imageUUID": image_uuid}
        if output_type == "URL":
            item["imageURL"] = url
        elif output_type == "base64Data":
            item["imageBase64Data"] = base64.b64encode(png).decode()
        else:
            item["imageDataURI"] = "data:image/png;base64," + base64.b64encode(png).decode()
        self._create(task, [item])
        if task.get("deliveryMethod", "sync") == "async":
            if self.style.ack_form == "item":
                out.data.append({"taskType": "removeBackground", "taskUUID": task["taskUUID"]})
        else:
            out.data.append({"taskType": "removeBackground", "taskUUID": task["taskUUID"], **item})

    def _caption(self, task: dict, out: _Outcome) -> None:
        self._check_uuid(task)
        model = task.get("model")
        if model not in CAPTION_MODELS:
            raise ApiError(400, "invalidModel" if model else "missingModel", f"Model {model!r} cannot caption.",
                           "model")
        for key in task:
            if key not in CAPTION_KEYS:
                raise ApiError(400, "unsupportedParameter", f"Parameter {key} is not supported by {model}.", key)
        if task["taskType"] == "caption":
            value, name = (task.get("inputs") or {}).get("image"), "inputs.image"
        else:
            value, name = task.get("inputImage"), "inputImage"
        if not value:
            raise ApiError(400, "missingImage", f"{name} is required.", name)
        if not image_size(self._resolve_image(value, name)):
            raise ApiError(400, "invalidImage", "Unsupported image format.", name)
        text = self.caption_text(task) if callable(self.caption_text) else self.caption_text
        item = {"taskType": "imageCaption", "taskUUID": task["taskUUID"], "text": text}
        if task.get("includeCost"):
            item["cost"] = CAPTION_MODELS[model]
        self._create(task, [item])
        out.data.append(item)

    # ---- webhooks and upload endpoints (the server calls out)

    def _schedule_delivery(self, state: TaskState) -> None:
        if not (state.payload.get("webhookURL") or state.payload.get("uploadEndpoint")):
            return
        finish = max(g.done_at for g in state.results) - time.monotonic()
        timer = threading.Timer(max(finish, 0) + 0.01, self._deliver, (state,))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _deliver(self, state: TaskState) -> None:
        data, errors = self._render(state, "webhook")
        hook = state.payload.get("webhookURL")
        if hook:
            for body in [{"data": [d]} for d in data] + [{"errors": [e]} for e in errors]:
                state.webhook_results.append(self._post_webhook(hook, body))
        endpoint = state.payload.get("uploadEndpoint")
        if endpoint:
            for gen in state.results:
                if not gen.error:
                    state.upload_results.append(self._put(endpoint, self._glb_bytes()))

    def _post_webhook(self, url: str, body: dict, attempts: int = 3) -> dict:
        """POST with a couple of retries on non-2xx, like the real server."""
        result = {"url": url, "attempts": [], "ok": False}
        for attempt in range(attempts):
            status = self._call(url, "POST", json.dumps(body).encode(), "application/json")
            result["attempts"].append(status)
            if isinstance(status, int) and 200 <= status < 300:
                result["ok"] = True
                break
            if self._stopping.wait(0.2 * 2**attempt):
                break
        return result

    def _put(self, url: str, data: bytes) -> dict:
        status = self._call(url, "PUT", data, "model/gltf-binary")
        return {"url": url, "status" if isinstance(status, int) else "error": status}

    @staticmethod
    def _call(url: str, method: str, data: bytes, content_type: str):
        """HTTP status, or the error text when there was no answer."""
        request = urllib.request.Request(url, data=data, method=method,
                                         headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as err:
            return err.code
        except (OSError, ValueError) as err:
            return str(err)
