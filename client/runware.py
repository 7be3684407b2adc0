"""The Runware REST client: one POST of a JSON array of tasks, retries, upload, submit, poll.

Pure Python on `requests` (Blender ships it); runs on worker threads and never imports bpy.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import tasks
from .errors import Code, Sam3dError, scrubbed
from .http import Guard, Transport, check_url, get_following, is_loopback, read_body

DEFAULT_API_URL = "https://api.runware.ai/v1"
RETRY_STATUSES = {408, 429} | set(range(500, 600))
_STATUS_CODES = {
    401: Code.INVALID_API_KEY, 402: Code.INSUFFICIENT_CREDITS, 403: Code.FORBIDDEN, 404: Code.NOT_FOUND,
    408: Code.TIMEOUT, 429: Code.RATE_LIMIT_EXCEEDED, 503: Code.SERVICE_UNAVAILABLE, 504: Code.TIMEOUT,
}
# An API answer is JSON of a few KB; an inline result (documented, though 3D results come as URLs) makes it
# larger: beyond this it is refused, and it never sits in memory whole past this bound.
MAX_ANSWER_BYTES = 32 * 1024 * 1024
MAX_CUTOUT_BYTES = 16 * 1024 * 1024  # the mask of a 2048 px photo is a few MB

__all__ = ["DEFAULT_API_URL", "Cutout", "RunwareClient", "check_url", "is_loopback"]


@dataclass
class Cutout:
    """What a background removal returned: a PNG, and whether it is the mask itself or a cut-out."""

    png: bytes
    mask_only: bool
    cost: float | None


@dataclass(frozen=True)
class Caption:
    text: str
    cost: float | None


class RunwareClient:
    """Talks to one API endpoint with one key. Thread-safe as long as each thread has its own client."""

    def __init__(
        self,
        api_key: str,
        api_url: str = DEFAULT_API_URL,
        *,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        user_agent: str = "sam3d-blender",
        guard: Guard | None = None,
        transport: Transport | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        if not api_key:
            raise Sam3dError(Code.MISSING_API_KEY)
        if not (api_key.isascii() and api_key.isprintable()):  # e.g. a zero-width space pasted with it
            raise Sam3dError(Code.INVALID_API_KEY, "the key holds invisible or non-ASCII characters")
        check_url(api_url)
        self.api_url = api_url
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.guard = guard or Guard()
        self.max_answer_bytes = max_answer_bytes
        self._own_transport = transport is None
        self.transport = transport or Transport(user_agent=user_agent, api_url=api_url)
        self._key = api_key
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
                         "Accept": "application/json", "User-Agent": user_agent}
        self.requests_sent = 0

    def close(self) -> None:
        if self._own_transport:
            self.transport.close()

    # --- transport ---------------------------------------------------------------------------------------

    def call(self, payload: list[dict[str, Any]], *, timeout: float | None = None) -> tuple[int, Any, int]:
        """POST the tasks; retry 408/429/5xx and dropped connections with the same body (same taskUUIDs).
        Returns (status, parsed body or None, attempts made). The answer is capped in bytes and seconds."""
        body = json.dumps(payload).encode()
        attempt = 0
        while True:
            self.guard.check()
            attempt += 1
            try:
                self.requests_sent += 1
                answer = self.transport.fetch("POST", self.api_url, guard=self.guard, timeout=timeout or self.timeout,
                                              max_bytes=self.max_answer_bytes, headers=self._headers, data=body)
            except Sam3dError as error:
                if not error.retryable or attempt > self.max_retries:
                    raise scrubbed(error, self._key) from None
                self.guard.wait(self.backoff(attempt - 1))
                continue
            if 300 <= answer.status < 400:  # never follow: the key would go with it
                raise Sam3dError(Code.BAD_RESPONSE, f"the API answered with a redirect (HTTP {answer.status})",
                                   status=answer.status)
            parsed = _json_or_none(answer.body)
            if answer.status in RETRY_STATUSES and attempt <= self.max_retries:
                wait = _retry_after(answer.headers)
                self.guard.wait(wait if wait is not None else self.backoff(attempt - 1))
                continue
            return answer.status, parsed, attempt

    def backoff(self, attempt: int) -> float:
        """The SDK's delay: min(base · 2^attempt, cap) + up to one base of jitter."""
        return min(self.backoff_base * 2**attempt, self.backoff_cap) + random.random() * self.backoff_base

    def sleep(self, seconds: float) -> None:
        self.guard.wait(seconds)

    def check_cancel(self) -> None:
        self.guard.check()

    def fail(self, status: int, body: Any, task_uuid: str | None = None) -> Sam3dError:
        """The error an answer carries (scoped to `task_uuid` or to the request), else one made from the status."""
        if body is not None:
            try:
                _, errors = tasks.split_envelope(body)
            except Sam3dError:
                errors = []
            for err in errors:
                if err.get("taskUUID") in (None, task_uuid):
                    return scrubbed(tasks.error_from(err, status), self._key)
        code = _STATUS_CODES.get(status, Code.SERVICE_UNAVAILABLE if status >= 500 else Code.BAD_RESPONSE)
        return Sam3dError(code, f"HTTP {status}", status=status, retryable=status in RETRY_STATUSES)

    def _one(self, task: dict[str, Any], read: Callable[[Any, str], Any]) -> Any:
        """Send one task and read its answer with `read(body, task_uuid)`, errors scrubbed of the key."""
        status, body, _ = self.call([task])
        if not 200 <= status < 300 or body is None:
            raise self.fail(status, body, task["taskUUID"])
        try:
            return read(body, task["taskUUID"])
        except Sam3dError as exc:
            raise scrubbed(exc, self._key) from None

    # --- the tasks ---------------------------------------------------------------------------------------

    def upload_image(self, png: bytes) -> str:
        return str(self._one(tasks.upload_task(png), tasks.upload_uuid))

    def remove_background(self, png: bytes, *, mask_only: bool = True) -> Cutout:
        """The object's mask (RemBG's documented mask-only output), or a cut-out whose alpha is the mask."""
        task = tasks.remove_background_task(tasks.data_uri_png(png), mask_only=mask_only)
        data, url, cost = self._one(task, tasks.cutout_of)
        if data is None and url:
            data = self.fetch_image(url)
        if not data or not data.startswith(b"\x89PNG"):
            raise Sam3dError(Code.BAD_RESPONSE, "The background removal did not return a PNG.")
        return Cutout(data, mask_only, cost)

    def caption(self, png: bytes, *, model: str = tasks.CAPTION_MODEL, task_uuid: str | None = None) -> Caption:
        """What the object in `png` (a cut-out) is, in a sentence: the text as the server sent it, unread."""
        text, cost = self._one(tasks.caption_task(tasks.data_uri_png(png), model=model, task_uuid=task_uuid),
                               tasks.caption_of)
        return Caption(text, cost)

    def fetch_image(self, url: str, max_bytes: int = MAX_CUTOUT_BYTES) -> bytes:
        """An image Runware made, from its own host: no API header goes with it, every hop is checked."""
        parts: list[bytes] = []
        with get_following(self.transport, url, guard=self.guard, timeout=self.timeout) as (resp, exchange):
            if resp.status_code != 200:
                raise Sam3dError(Code.DOWNLOAD_FAILED, f"HTTP {resp.status_code}", status=resp.status_code)
            read_body(resp, exchange, max_bytes, parts.append)  # "far larger than any expected": no preference
        return b"".join(parts)

    def account(self) -> dict[str, Any]:
        """The account's details (`accountManagement` getDetails): balance in USD, organization name."""
        return dict(self._one(tasks.account_task(), tasks.account_of))

    def submit(self, task: dict[str, Any]) -> tasks.TaskState:
        """Send one task. A retried submission that meets `conflictTaskUUID` was already accepted: the
        answer is then an acknowledgement to poll, never a second (paid) submission."""
        uuid = task["taskUUID"]
        timeout = self.timeout if task.get("deliveryMethod") != "sync" else max(self.timeout, 600.0)
        status, body, attempts = self.call([task], timeout=timeout)
        state = tasks.task_state(body, uuid, status) if body is not None else tasks.TaskState(uuid)
        if attempts > 1 and any(e.code == Code.CONFLICT_TASK_UUID for e in state.errors):
            return tasks.TaskState(uuid, acknowledged=True)
        if not 200 <= status < 300 or (state.errors and not state.results):
            raise self.fail(status, body, uuid)
        for err in state.errors:  # generations that failed in a sync answer: shown to the user, so scrubbed
            scrubbed(err, self._key)
        state.acknowledged = True
        return state

    def poll(self, task_uuid: str) -> tasks.TaskState:
        status, body, _ = self.call([tasks.poll_task(task_uuid)])
        if not 200 <= status < 300 or body is None:
            raise self.fail(status, body, task_uuid)
        state = tasks.task_state(body, task_uuid, status)
        for err in state.errors:
            scrubbed(err, self._key)
        return state

    def wait(
        self,
        task_uuid: str,
        expected: int,
        *,
        deadline: float | None = None,
        on_progress: Callable[[tasks.TaskState], None] | None = None,
        first_delay: float = 1.0,
        min_delay: float = 0.5,
        max_delay: float = 2.0,
        typical: float | None = None,
    ) -> tasks.TaskState:
        """Poll until `expected` generations have succeeded or failed. The delay backs off ×1.5 up to `max_delay`;
        around the `typical` time a task has taken lately it polls every FAST_POLL seconds (Runware does not
        document a progress figure; when one comes, the next poll is timed for the predicted end).
        Raises the task's error when nothing succeeded; a partial success returns with its errors."""
        delay = first_delay
        began = time.monotonic()
        deadline = min(deadline or float("inf"), self.guard.deadline)
        while True:
            if time.monotonic() + delay > deadline:
                raise Sam3dError(Code.JOB_TIMEOUT, task_uuid=task_uuid)
            self.sleep(delay)
            state = self.poll(task_uuid)
            if on_progress:
                on_progress(state)
            finished = len(state.results) + len(state.errors) >= expected
            settled = not state.processing and bool(state.results or state.errors)
            if finished or settled:
                if not state.results:
                    raise state.errors[0]
                return state
            delay = next_delay(delay, time.monotonic() - began, state.progress, typical, min_delay, max_delay)


FAST_POLL = 0.25  # seconds between polls around the time a task is expected to end


def next_delay(delay: float, elapsed: float, progress: int | None, typical: float | None, min_delay: float,
               max_delay: float) -> float:
    """The next wait of a poll loop: a backoff, shortened around the expected end of the task."""
    if progress and 0 < progress < 100:  # linear estimate of the time left
        return min(max(elapsed * (100 - progress) / progress, 0.1), max_delay)
    backoff = min(max(delay * 1.5, min_delay), max_delay)
    if typical:
        fast = min(FAST_POLL, max(typical / 20, 0.1))  # short tasks: a quarter second would be a large share
        start, end = 0.85 * typical, 1.5 * typical
        if elapsed < start:
            return min(backoff, max(start - elapsed, fast))
        if elapsed < end:
            return fast
    return backoff


def _json_or_none(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _retry_after(headers: dict[str, str]) -> float | None:
    """`Retry-After` as seconds or an HTTP date, capped so a bad header cannot stall a job for long."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), 120.0)
