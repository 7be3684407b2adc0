"""One reconstruction on a worker thread: prepare the PNGs, submit, poll, download, journal each step.

The worker never touches bpy. It reports through `Job.events`, a queue the main thread drains on its timer
tick (`Job.drain`). `Job.cancel()` stops it within a fraction of a second wherever it is, a read included
(client/http.py), and the job's time limit covers the whole job. A job made with
`resume=True` skips the submission: it fetches an already submitted task by its UUID (nothing paid twice).
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import engines, files, glb_gate, tasks
from .cache import OnceCache
from .download import download, save_inline
from .errors import Code, Sam3dError, redact
from .http import Guard, Transport
from .journal import Journal, TaskRecord, clean_entries, task_files
from .locks import TaskLocks
from .money import Reservation, refused_before_billing
from .runware import DEFAULT_API_URL, RunwareClient

log = logging.getLogger(__name__)

# Where each phase sits on the progress bar (start, end); importing happens on the main thread.
PHASES = {
    "waiting": (0.0, 0.0),
    "preparing": (0.0, 0.05),
    "uploading": (0.05, 0.15),
    "queued": (0.15, 0.2),
    "processing": (0.2, 0.8),
    "downloading": (0.8, 0.95),
    "importing": (0.95, 1.0),
}
INPUT_FILES = ("photo.png", "mask.png")  # kept beside the results, so Retry works from any .blend


def view_file(n: int) -> str:
    """The file of the n-th other view (from 1), beside the inputs."""
    return f"view_{n}.png"
# The photo is uploaded once (imageUpload) and its UUID reused by every task that sends the same photo to
# the same endpoint: N masks of a photo cost one photo upload plus N masks.
UPLOADS: OnceCache[str] = OnceCache(32)
# Failures on our side of a sent task: Runware may still finish it (and bill it), so Resume stays offered.
CLIENT_SIDE = {Code.JOB_TIMEOUT, Code.NETWORK, Code.TIMEOUT, Code.DOWNLOAD_FAILED, Code.DOWNLOAD_TOO_LARGE,
               Code.NOT_GLB, Code.RESULT_EXPIRED, Code.RATE_LIMIT_EXCEEDED, Code.SERVICE_UNAVAILABLE,
               Code.INTERNAL_SERVER_ERROR, Code.BAD_RESPONSE, Code.DISK_ERROR, Code.INTERNAL, Code.RESPONSE_TOO_LARGE,
               Code.PROXY_REFUSED, Code.TLS_UNTRUSTED, Code.GLB_EXTERNAL_FILE, Code.GLB_MALFORMED, Code.GLB_TOO_LARGE,
               Code.GLB_UNKNOWN_EXTENSION, Code.INSECURE_RESULT_URL, Code.KEY_IN_RESULT_URL, Code.LOCAL_RESULT_URL}


@dataclass
class CaptionRequest:
    """A caption of the job's object, asked once its task is sent (while Runware works on it): paid apart,
    reserved on the main thread like every paid request, and journalled with the task, so it is never asked
    twice. Its failure is a warning: the reconstruction goes on."""

    model: str
    prepare: Callable[[], bytes] = field(repr=False)  # the cut-out PNG, on the worker
    task_uuid: str = field(default_factory=tasks.new_task_uuid)
    reservation: Reservation | None = field(default=None, repr=False)


@dataclass
class JobRequest:
    """Everything a job needs, read from Blender on the main thread before the worker starts."""

    api_key: str = field(repr=False)
    result_dir: Path
    prepare: Callable[[], tuple[bytes, bytes]] | None = field(default=None, repr=False)  # on the worker
    views: Callable[[], list[bytes]] | None = field(default=None, repr=False)  # other views' PNGs, on the worker
    view_names: list[str] = field(default_factory=list)  # their images' names (the journal's, for a person)
    task_uuid: str = field(default_factory=tasks.new_task_uuid)
    resume: bool = False
    name: str = "object"
    image_name: str = ""
    mask_name: str = ""
    placement: str = "CURSOR"
    api_url: str = DEFAULT_API_URL
    model: str = tasks.DEFAULT_MODEL
    engine: str = "SAM3D"  # which image-to-3D model family (client/engines.py); `model` is its id
    engine_values: dict[str, Any] = field(default_factory=dict)  # its settings, by name (only those to send)
    prompt: str = ""
    seed: int | None = None
    number_results: int = 1
    delivery: str = "async"
    ttl: int = 0
    webhook_url: str = ""
    upload_endpoint: str = ""
    request_timeout: float = 60.0
    job_timeout: float = 900.0  # the whole job, from taking its slot to the last file on disk
    max_download_bytes: int = 512 * 1024 * 1024
    max_triangles: int = 10_000_000  # the GLB gate's budget (a preference)
    user_agent: str = "sam3d-blender"
    proxy: str = field(default="", repr=False)  # may hold a user name and password
    ca_bundle: str = ""
    poll_first_delay: float = 0.5
    typical_seconds: float | None = None  # how long tasks took lately (polls come quicker around then)
    source: dict[str, Any] = field(default_factory=dict)  # what the work is (a batch item's files and hashes)
    text_only: bool = False  # a text-to-3D engine given its prompt alone: no photo, no mask, nothing to upload
    refine_of: str = ""  # Refine: the object its result is fitted onto, kept so Resume and Re-import fit it too
    downloaded: list[dict[str, Any]] = field(default_factory=list)  # a resumed task's files already on disk
    reservation: Reservation | None = field(default=None, repr=False)  # the money held for it (none: free)
    caption: CaptionRequest | None = None  # a caption to ask with a new task (never with a resumed one)

    @property
    def folder(self) -> Path:
        return self.result_dir / self.task_uuid

    def info(self) -> dict[str, Any]:
        """What the journal keeps to show, re-import, retry or resume the job (never the key)."""
        info: dict[str, Any] = {
            "name": self.name, "image": self.image_name, "mask": self.mask_name, "prompt": self.prompt,
            "seed": None if self.seed is None else str(self.seed), "model": self.model,
            "number_results": self.number_results, "placement": self.placement, "engine": self.engine}
        if self.view_names:
            info["views"] = list(self.view_names)
        if self.engine_values:  # Retry sends them again, Re-import keeps the quads they asked for
            info["engine_values"] = dict(self.engine_values)
        if self.source:
            info["source"] = self.source
        if self.text_only:
            info["text_only"] = True
        if self.refine_of:
            info["refine_of"] = self.refine_of
        return info


@dataclass
class Result:
    """One generation on disk, ready to import."""

    path: Path
    task_uuid: str
    index: int
    seed: int | None
    cost: float | None
    url: str | None


@dataclass
class Event:
    kind: str  # "phase", "done" or "failed"
    phase: str = ""
    fraction: float = 0.0
    text: str = ""  # a template in English ("Processing {}%"): the UI translates it, then fills in `values`
    values: tuple[object, ...] = ()
    results: list[Result] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: Sam3dError | None = None
    caption: str = ""  # what the job's caption said (as sent: the Blender side cleans it)
    caption_cost: float | None = None  # what Runware reported the caption cost


class RecentDurations:
    """How long this process's latest tasks took from submission to results, per endpoint and model. Jobs
    started together (a batch, several masks) learn from the first to end, before the journal's figure (read
    when a job is made) can."""

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._values: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def add(self, key: tuple[str, str], seconds: float) -> None:
        with self._lock:
            self._values.setdefault(key, deque(maxlen=self._size)).append(seconds)

    def durations(self, key: tuple[str, str]) -> list[float]:
        """The durations kept for `key`, oldest first."""
        with self._lock:
            return list(self._values.get(key, ()))

    def median(self, key: tuple[str, str]) -> float | None:
        with self._lock:
            values = sorted(self._values.get(key, ()))
        return values[len(values) // 2] if values else None


RECENT = RecentDurations()


class Job:
    """A handle the main thread keeps; the worker only writes to `events`."""

    def __init__(self, request: JobRequest, slots: threading.Semaphore | None = None) -> None:
        self.request = request
        self.slots = slots  # the concurrency limit: the worker waits for a slot before it does anything
        self.task_uuid = request.task_uuid
        self.events: queue.Queue[Event] = queue.Queue()
        self.cancel_event = threading.Event()
        self.created = time.monotonic()
        self.started: float | None = None
        self.submitted = request.resume  # set once the task may have reached the server (it may be billed)
        self.refused = False  # the API refused the submission itself: no task exists, nothing was billed
        self.caption = ""  # the worker's: what the caption said (and cost), handed over with the outcome
        self.caption_cost: float | None = None
        self.caption_warning = ""
        # The main thread's view, updated by drain().
        self.phase = "waiting"
        self.fraction = 0.0
        self.text = "Waiting for a free slot"  # a template, filled in with `values` (see Event.text)
        self.values: tuple[object, ...] = ()
        self.outcome: Event | None = None
        self._thread = threading.Thread(target=self._run, name=f"sam3d-job-{self.task_uuid[:8]}", daemon=True)

    # --- main thread ----------------------------------------------------------------------------------

    def start(self) -> Job:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.cancel_event.set()
        if self.started is None and self.outcome is None:  # never started: ends here, nothing was sent
            self.outcome = Event("failed", error=Sam3dError(Code.CANCELLED))
            if self.request.reservation is not None:
                self.request.reservation.release()
            self._release_caption()

    def _release_caption(self) -> None:
        """A caption never asked (the job ended first) was never billed: its money goes back."""
        ask = self.request.caption
        if ask is not None and ask.reservation is not None:
            ask.reservation.release()  # no-op once settled

    @property
    def holds_slot(self) -> bool:
        """Past waiting for a slot, not yet ended (as far as the main thread has drained)."""
        return self.started is not None and self.phase != "waiting" and not self.done

    @property
    def done(self) -> bool:
        return self.outcome is not None

    def show(self, phase: str, fraction: float, text: str, *values: object) -> None:
        """The main thread's view of the job: its phase, how far it is, and a text (a template, see Event.text)."""
        self.phase, self.fraction, self.text, self.values = phase, fraction, text, values

    def progress_text(self, translate: Callable[[str], str] = str) -> str:
        """What the job is doing, for a person: `translate` is the UI's translation function (a translation
        whose placeholders do not match falls back to the English text)."""
        try:
            return translate(self.text).format(*self.values)
        except (IndexError, KeyError, ValueError):
            return self.text.format(*self.values)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def drain(self, block: float = 0.0) -> list[Event]:
        """Apply the worker's events; wait up to `block` seconds for the first one."""
        got: list[Event] = []
        try:
            got.append(self.events.get(timeout=block) if block > 0 else self.events.get_nowait())
            while True:
                got.append(self.events.get_nowait())
        except queue.Empty:
            pass
        for event in got:
            if event.kind == "phase":
                self.show(event.phase, event.fraction, event.text, *event.values)
            else:
                self.outcome = event
        return got

    def join(self, timeout: float | None = None) -> bool:
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    # --- worker thread --------------------------------------------------------------------------------

    def _emit(self, phase: str, within: float = 0.0, text: str = "", *values: object) -> None:
        start, end = PHASES[phase]
        self.events.put(Event("phase", phase, start + (end - start) * min(max(within, 0.0), 1.0),
                              text or phase.capitalize(), values))

    def _run(self) -> None:
        try:
            self._take_slot()
        except Sam3dError as exc:
            self._settle_money(exc)
            self._release_caption()
            self.events.put(Event("failed", error=exc))
            return
        try:
            self._work()
        except Exception as exc:  # never leave the main thread waiting for an outcome that will not come
            log.exception("SAM 3D job %s failed", self.task_uuid)
            self.events.put(Event("failed", error=Sam3dError(Code.INTERNAL, f"unexpected {type(exc).__name__}")))
        finally:
            self._release_caption()
            if self.slots is not None:
                self.slots.release()

    def _note(self, journal: Journal, event: str, **fields: Any) -> None:
        """One journal line: whatever a server sent that it holds (a code, a URL, a seed) never holds the key,
        in any field (the journal and its index are shared files)."""
        key = self.request.api_key
        if key and len(key) >= 4 and key in json.dumps(fields, default=str):
            fields = json.loads(redact(json.dumps(fields, default=str), key))
        journal.append(event, self.task_uuid, **fields)

    def _failed(self, journal: Journal, exc: Sam3dError) -> None:
        """Journal the end of a job. A task that was sent stays resumable unless the server said it failed:
        a time limit, the network or the download failing on our side must not lose a paid result."""
        if exc.code == Code.CANCELLED and not self.submitted:
            _try(self._note, journal, "cancelled")
        elif exc.code != Code.CANCELLED:  # a cancelled paid task stays unfinished: it can be resumed
            ours = self.submitted and not self.refused and exc.code in CLIENT_SIDE
            _try(self._note, journal, "failed", code=exc.code, resumable=ours)
        self._settle_money(exc)
        self.events.put(Event("failed", error=exc))

    def _settle_money(self, exc: Sam3dError | None, state: tasks.TaskState | None = None) -> None:
        """The reservation becomes the reported cost; it stays whole when a sent task failed (Runware may have
        billed it), and is given back only when nothing was billed."""
        reservation = self.request.reservation
        if reservation is None:
            return
        if exc is not None and (not self.submitted or self.refused):
            reservation.release()
        elif state is not None and any(g.cost is not None for g in state.results):
            reservation.settle(sum(g.cost or 0.0 for g in state.results), len(state.results))
        else:
            reservation.settle(None)

    def _take_slot(self) -> None:
        """Wait for a free slot (the worker, not the main thread, so the next job starts the moment one
        ends), checking for a cancel now and then."""
        while self.slots is not None and not self.slots.acquire(timeout=0.2):
            if self.cancel_event.is_set():
                raise Sam3dError(Code.CANCELLED)
        if self.cancel_event.is_set():
            if self.slots is not None:
                self.slots.release()
            raise Sam3dError(Code.CANCELLED)

    def _work(self) -> None:
        req = self.request
        journal = Journal(req.result_dir)
        locks = TaskLocks(req.result_dir)
        guard = Guard(self.cancel_event, req.job_timeout)  # the whole job, from here to the last file
        transport = Transport(proxy=req.proxy, ca_bundle=req.ca_bundle, user_agent=req.user_agent, api_url=req.api_url)
        try:
            if not files.is_uuid(self.task_uuid):  # it names the task's folder: never a path
                raise Sam3dError(Code.BAD_TASK_UUID)
            if not locks.acquire(self.task_uuid):
                raise Sam3dError(Code.TASK_LOCKED, f"Another Blender is fetching the task {self.task_uuid} from the "
                                   "same result folder; its result lands there.")
            client = RunwareClient(req.api_key, req.api_url, timeout=req.request_timeout, user_agent=req.user_agent,
                                   guard=guard, transport=transport)
            if req.downloaded:  # nothing to fetch: the files of an earlier run, checked again
                results = self._from_disk()
                self.events.put(Event("done", results=results))
                return
            state = self._fetch(client) if req.resume else self._submit(client, journal)
            self._settle_money(None, state)
            _try(self._note, journal, "results", results=[
                {"index": g.index, "url": g.url, "seed": None if g.seed is None else str(g.seed), "cost": g.cost}
                for g in state.results])
            results = self._download(state.results, guard, transport)
            _try(self._note, journal, "downloaded", files=[
                {"path": str(r.path), "index": r.index, "seed": None if r.seed is None else str(r.seed),
                 "cost": r.cost} for r in results])
            if self.slots is not None:  # free the slot before the main thread imports: the next job starts now
                self.slots.release()
                self.slots = None
            warnings = [e.sentence for e in state.errors] + ([self.caption_warning] if self.caption_warning else [])
            self.events.put(Event("done", results=results, warnings=warnings, caption=self.caption,
                                  caption_cost=self.caption_cost))
        except Sam3dError as exc:
            # another Blender's task (its lines are its own), or none
            if exc.code in (Code.TASK_LOCKED, Code.BAD_TASK_UUID):
                self._settle_money(exc)
                self.events.put(Event("failed", error=exc))
                return
            locks.release(self.task_uuid)
            self._failed(journal, exc)
        except OSError as exc:  # the result folder: missing rights, disk full
            locks.release(self.task_uuid)
            self._settle_money(Sam3dError(Code.DISK_ERROR))
            self.events.put(Event("failed", error=Sam3dError(Code.DISK_ERROR, f"{exc.strerror}: {exc.filename}")))
        except Exception as exc:  # a bug of ours: say so plainly, keep the traceback for the console
            log.exception("SAM 3D job %s failed", self.task_uuid)
            locks.release(self.task_uuid)
            self._failed(journal, Sam3dError(Code.INTERNAL, f"unexpected {type(exc).__name__}"))
        finally:
            transport.close()

    def _submit(self, client: RunwareClient, journal: Journal) -> tasks.TaskState:
        req = self.request
        journal.append("created", self.task_uuid, info=req.info())
        self._emit("preparing")
        if req.text_only:
            return self._submit_text(client, journal)
        if req.prepare is None:
            raise Sam3dError(Code.INTERNAL, "no inputs")
        image_png, mask_png = req.prepare()
        views = req.views()[:engines.MAX_VIEWS] if req.views is not None else []
        client.check_cancel()
        files.ensure_dir(req.result_dir, self.task_uuid)  # a real folder: never a link planted in its place
        for name, data in [*zip(INPUT_FILES, (image_png, mask_png), strict=True),
                           *((view_file(n), view) for n, view in enumerate(views, 1))]:
            files.write_atomically(req.folder / name, data, root=req.result_dir)
        self._emit("uploading", 0.0, "Uploading the photo ({:.1f} MB)",
                   sum(len(png) for png in (image_png, *views)) / 1e6)
        image_ref, reused = self._photo(client, image_png)
        uploaded = [self._photo(client, view) for view in views]
        reused = reused or any(was for _, was in uploaded)
        task = engine_task(req, image_ref, tasks.data_uri_png(mask_png), self.task_uuid, [r for r, _ in uploaded])
        client.check_cancel()
        journal.append("submitted", self.task_uuid, info=req.info())  # before the request: never lost
        self.submitted = True
        self._emit("uploading", 0.5, text="Sending the task")
        try:
            state = self._send(client, task)
        except Sam3dError as exc:
            if not (reused and exc.code == Code.INVALID_IMAGE):
                raise
            # Runware forgot the upload (deleted after 30 days unused): send it again. The refused task was
            # never created, so it keeps its UUID.
            task = engine_task(req, self._photo(client, image_png, fresh=True)[0], tasks.data_uri_png(mask_png),
                               self.task_uuid, [self._photo(client, view, fresh=True)[0] for view in views])
            state = self._send(client, task)
        self._caption(client, journal)
        if len(state.results) >= req.number_results:  # sync delivery, or an instant answer
            return state
        return self._wait(client)

    def _submit_text(self, client: RunwareClient, journal: Journal) -> tasks.TaskState:
        """A prompt alone to a text-to-3D engine: nothing to prepare or upload."""
        task = engine_task(self.request, "", "", self.task_uuid)
        client.check_cancel()
        journal.append("submitted", self.task_uuid, info=self.request.info())  # before the request: never lost
        self.submitted = True
        self._emit("uploading", 0.5, text="Sending the task")
        state = self._send(client, task)
        if len(state.results) >= self.request.number_results:
            return state
        return self._wait(client)

    def _caption(self, client: RunwareClient, journal: Journal) -> None:
        """Ask the job's caption, if it has one to ask; a failure is a warning, never the job's."""
        ask = self.request.caption
        if ask is None:
            return
        self._emit("uploading", 0.8, text="Asking for a caption")
        sent = False
        try:
            png = ask.prepare()
            client.check_cancel()
            journal.append("caption_sent", self.task_uuid, caption_uuid=ask.task_uuid)  # before: never lost
            sent = True
            answer = client.caption(png, model=ask.model, task_uuid=ask.task_uuid)
        except Sam3dError as exc:
            if exc.code == Code.CANCELLED:
                raise
            self.caption_warning = f"No caption: {exc}"
            if ask.reservation is not None:
                if sent and not refused_before_billing(exc):
                    ask.reservation.settle(None)
                else:
                    ask.reservation.release()
            return
        except (OSError, ValueError) as exc:  # the cut-out could not be made (an empty mask): nothing sent
            self.caption_warning = f"No caption: {exc}"
            if ask.reservation is not None:
                ask.reservation.release()
            return
        if ask.reservation is not None:
            ask.reservation.settle(answer.cost, 1 if answer.cost is not None else 0)
        self.caption, self.caption_cost = answer.text, answer.cost
        _try(self._note, journal, "caption", info={"caption": answer.text}, cost=answer.cost)

    def _send(self, client: RunwareClient, task: dict[str, Any]) -> tasks.TaskState:
        """Submit; an answer that refuses the request itself (4xx: key, credits, a parameter) means no task was
        created and nothing billed. A lost answer leaves the task possibly billed: `submitted` stays."""
        self.refused = False  # a send that follows a refused one (a forgotten photo) may be billed
        try:
            return client.submit(task)
        except Sam3dError as exc:
            self.refused = refused_before_billing(exc)
            raise

    def _photo(self, client: RunwareClient, png: bytes, fresh: bool = False) -> tuple[str, bool]:
        """(inputs.image, whether it is an earlier upload). The photo is uploaded once per endpoint and its
        UUID reused; an endpoint that refuses uploads gets it inline, as a data URI."""
        key = (self.request.api_url, hashlib.blake2b(png, digest_size=16).digest())
        if fresh:
            UPLOADS.forget(key)
        reused = key in UPLOADS
        try:
            return UPLOADS.get(key, lambda: client.upload_image(png)), reused
        except Sam3dError as exc:
            if exc.status not in (400, 404, 405, 501) or exc.code in (Code.INVALID_API_KEY, Code.INSUFFICIENT_CREDITS):
                raise
            log.info("SAM 3D: the endpoint refused imageUpload (%s); sending the photo inline", exc.code)
            return tasks.data_uri_png(png), False

    def _fetch(self, client: RunwareClient) -> tasks.TaskState:
        self._emit("queued", text="Fetching the earlier task")
        return self._wait(client)

    def _wait(self, client: RunwareClient) -> tasks.TaskState:
        req = self.request
        self._emit("queued", text="Queued")

        def progress(s: tasks.TaskState) -> None:
            pct = s.progress
            within = max(len(s.results) / req.number_results, (pct or 0) / 100)
            if not (s.processing or s.results):
                self._emit("processing", within, "Queued")
            elif pct is None:
                self._emit("processing", within, "Processing")
            else:
                self._emit("processing", within, "Processing {}%", pct)

        began, key = time.monotonic(), (req.api_url, req.model)
        state = client.wait(self.task_uuid, req.number_results, on_progress=progress,
                            first_delay=req.poll_first_delay, typical=RECENT.median(key) or req.typical_seconds)
        if not req.resume:  # a resumed task began before this wait: its time says nothing
            RECENT.add(key, time.monotonic() - began)
        return state

    def _gate(self, path: Path) -> None:
        """Only a GLB that refers to nothing outside itself, within the budget, may reach the importer."""
        budget = self.request.max_triangles
        glb_gate.inspect_glb(path, max_triangles=budget, max_vertices=budget, root=self.request.result_dir)

    def _from_disk(self) -> list[Result]:
        """The files of an earlier run, each looked for by its name in this task's own folder (never at a path
        the journal gives), and gated again: the result folder is shared, its files may have changed."""
        record = TaskRecord(self.task_uuid, files=clean_entries(self.request.downloaded, "files"))
        found = task_files(record, self.request.result_dir)
        if found is None:
            raise Sam3dError(Code.NOT_GLB, "the files of the earlier run are not in the task's folder any more")
        results = []
        for path, f in found:
            self._gate(path)
            seed = f.get("seed")
            results.append(Result(path, self.task_uuid, f["index"], int(seed) if seed else None, f.get("cost"), None))
        return results

    def _download(self, generations: list[tasks.Generation], guard: Guard, transport: Transport) -> list[Result]:
        """Every generation to its own file, numbered by us (0, 1…): the server's index may repeat or be absurd.
        Each file passes the GLB gate before the main thread may import it."""
        req = self.request
        results = []
        total = len(generations)
        files.ensure_dir(req.result_dir, self.task_uuid)  # a real folder: never a link planted in its place
        for n, gen in enumerate(sorted(generations, key=lambda g: g.index)):
            dest = req.folder / f"{files.safe_name(req.name)}_{n}.glb"
            if gen.url and len(req.api_key) >= 4 and req.api_key in gen.url:  # it would go to the file host
                raise Sam3dError(Code.KEY_IN_RESULT_URL)

            def progress(got: int, size: int | None, n: int = n) -> None:
                self._emit("downloading", (n + (got / size if size else 0.5)) / total, "Downloading {}/{} ({:.1f} MB)",
                           n + 1, total, got / 1e6)

            self._emit("downloading", n / total, "Downloading {}/{}", n + 1, total)
            if gen.data is not None:
                save_inline(gen.data, dest, max_bytes=req.max_download_bytes, root=req.result_dir)
            elif gen.url:
                download(gen.url, dest, max_bytes=req.max_download_bytes, timeout=req.request_timeout,
                         guard=guard, transport=transport, on_progress=progress, root=req.result_dir)
            self._gate(dest)
            results.append(Result(dest, gen.task_uuid, gen.index, gen.seed, gen.cost, gen.url))
        return results


def engine_task(req: JobRequest, image: str, mask: str, task_uuid: str, views: list[str] | None = None
                ) -> dict[str, Any]:
    """The job's `3dInference` task for its engine: SAM 3D gets the photo and its mask, an engine without a mask
    input its cut-out (the request's image, made so by the Blender side) and the other `views` after it, and no
    prompt (they take one or the other), a seed only where the engine takes one. A setting it does not document,
    or more images than it takes, is a sentence, never sent."""
    spec = engines.engine(req.engine)
    posed = spec.input_kind == "image+mask"
    try:
        return engines.request(
            spec, model=req.model, image=image, images=list(views or []), mask=mask if posed else None,
            prompt=req.prompt if posed or req.text_only else "",
            seed=req.seed if spec.seed_max is not None else None, values=req.engine_values, task_uuid=task_uuid,
            number_results=req.number_results, delivery=req.delivery, ttl=req.ttl, webhook_url=req.webhook_url,
            upload_endpoint=req.upload_endpoint)
    except engines.EngineError as exc:
        raise Sam3dError(Code.INVALID_SETTING, str(exc), parameter="settings") from None


def _try(write: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """A journal line that cannot be written (disk full) must not turn a paid result into a failure."""
    try:
        write(*args, **kwargs)
    except OSError as exc:
        log.warning("SAM 3D: could not write the job journal: %s", exc)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60] or "object"
