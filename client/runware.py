"""The Runware REST client: one POST of a JSON array of tasks, retries, upload, submit, poll.

Pure Python on `requests` (Blender ships it); runs on worker threads and never imports bpy.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import random
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests

from . import tasks
from .errors import RunwareError, scrubbed

DEFAULT_API_URL = "https://api.runware.ai/v1"
RETRY_STATUSES = {408, 429} | set(range(500, 600))
_STATUS_CODES = {
    401: "invalidApiKey", 402: "insufficientCredits", 403: "forbidden", 404: "notFound", 408: "timeout",
    429: "rateLimitExceeded", 503: "serviceUnavailable", 504: "timeout",
}


def check_url(url: str, what: str = "API URL") -> None:
    """HTTPS only, except plain HTTP to this machine (the emulator, a local proxy)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and is_loopback(parts.hostname or ""):
        return
    code = "insecureUrl" if what == "API URL" else "insecureResultUrl"
    raise RunwareError(code, f"The {what} must start with https:// (got {parts.scheme or 'nothing'}://).")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
        cancel: threading.Event | None = None,
    ) -> None:
        if not api_key:
            raise RunwareError("missingApiKey")
        if not (api_key.isascii() and api_key.isprintable()):  # e.g. a zero-width space pasted with it
            raise RunwareError("invalidApiKey", "the key holds invisible or non-ASCII characters")
        check_url(api_url)
        self.api_url = api_url
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.cancel = cancel or threading.Event()
        self._key = api_key
        self._session = requests.Session()
        # The user's proxy settings, but never for this machine: a key meant for loopback HTTP must not
        # travel in clear to a proxy.
        self._session.trust_env = not is_loopback(urlsplit(api_url).hostname or "")
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
                         "Accept": "application/json", "User-Agent": user_agent}
        self.requests_sent = 0

    def close(self) -> None:
        self._session.close()

    # --- transport ---------------------------------------------------------------------------------------

    def call(self, payload: list[dict[str, Any]], *, timeout: float | None = None) -> tuple[int, Any, int]:
        """POST the tasks; retry 408/429/5xx and dropped connections with the same body (same taskUUIDs).
        Returns (status, parsed body or None, attempts made)."""
        body = json.dumps(payload)
        attempt = 0
        while True:
            self.check_cancel()
            attempt += 1
            try:
                self.requests_sent += 1
                resp = self._session.post(self.api_url, data=body, headers=self._headers,
                                          timeout=(min(10.0, timeout or self.timeout), timeout or self.timeout),
                                          allow_redirects=False)  # never carry the key to another host
            except (requests.ConnectionError, requests.Timeout) as exc:
                timed_out = isinstance(exc, requests.Timeout) and not isinstance(exc, requests.ConnectionError)
                error = RunwareError("timeout" if timed_out else "network", retryable=True)
                if attempt > self.max_retries:
                    raise error from None
                self.sleep(self.backoff(attempt - 1))
                continue
            parsed = _json_or_none(resp)
            if resp.status_code in RETRY_STATUSES and attempt <= self.max_retries:
                wait = _retry_after(resp)
                self.sleep(wait if wait is not None else self.backoff(attempt - 1))
                continue
            return resp.status_code, parsed, attempt

    def backoff(self, attempt: int) -> float:
        """The SDK's delay: min(base · 2^attempt, cap) + up to one base of jitter."""
        return min(self.backoff_base * 2**attempt, self.backoff_cap) + random.random() * self.backoff_base

    def sleep(self, seconds: float) -> None:
        if self.cancel.wait(max(0.0, seconds)):
            raise RunwareError("cancelled")

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise RunwareError("cancelled")

    def fail(self, status: int, body: Any, task_uuid: str | None = None) -> RunwareError:
        """The error an answer carries (scoped to `task_uuid` or to the request), else one made from the status."""
        if body is not None:
            try:
                _, errors = tasks.split_envelope(body)
            except RunwareError:
                errors = []
            for err in errors:
                if err.get("taskUUID") in (None, task_uuid):
                    return scrubbed(tasks.error_from(err, status), self._key)
        code = _STATUS_CODES.get(status, "serviceUnavailable" if status >= 500 else "badResponse")
        return RunwareError(code, f"HTTP {status}", status=status, retryable=status in RETRY_STATUSES)

    # --- the tasks ---------------------------------------------------------------------------------------

    def upload_image(self, png: bytes) -> str:
        task = tasks.upload_task(png)
        status, body, _ = self.call([task])
        if not 200 <= status < 300 or body is None:
            raise self.fail(status, body, task["taskUUID"])
        try:
            return tasks.upload_uuid(body, task["taskUUID"])
        except RunwareError as exc:
            raise scrubbed(exc, self._key) from None

    def remove_background(self, png: bytes) -> bytes:
        """A cut-out of the photo (PNG, alpha = the object), made by Runware's removeBackground."""
        task = tasks.remove_background_task(tasks.data_uri_png(png))
        status, body, _ = self.call([task])
        if not 200 <= status < 300 or body is None:
            raise self.fail(status, body, task["taskUUID"])
        try:
            data, url = tasks.cutout_of(body, task["taskUUID"])
        except RunwareError as exc:
            raise scrubbed(exc, self._key) from None
        if data is None and url:
            check_url(url, "result URL")
            with requests.get(url, timeout=self.timeout) as resp:  # a plain request: the key stays here
                if resp.status_code != 200:
                    raise RunwareError("downloadFailed", f"HTTP {resp.status_code}", status=resp.status_code)
                data = resp.content
        if not data or not data.startswith(b"\x89PNG"):
            raise RunwareError("badResponse", "The background removal did not return a PNG.")
        return data

    def submit(self, task: dict[str, Any]) -> tasks.TaskState:
        """Send one task. A retried submission that meets `conflictTaskUUID` was already accepted: the
        answer is then an acknowledgement to poll, never a second (paid) submission."""
        uuid = task["taskUUID"]
        timeout = self.timeout if task.get("deliveryMethod") != "sync" else max(self.timeout, 600.0)
        status, body, attempts = self.call([task], timeout=timeout)
        state = tasks.task_state(body, uuid, status) if body is not None else tasks.TaskState(uuid)
        if attempts > 1 and any(e.code == "conflictTaskUUID" for e in state.errors):
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
        deadline: float,
        on_progress: Callable[[tasks.TaskState], None] | None = None,
        first_delay: float = 1.0,
        min_delay: float = 0.5,
        max_delay: float = 2.0,
    ) -> tasks.TaskState:
        """Poll until `expected` generations have succeeded or failed. Without a `progress` figure the delay
        backs off ×1.5 up to `max_delay`; with one, the next poll is timed for the predicted end.
        Raises the task's error when nothing succeeded; a partial success returns with its errors."""
        delay = first_delay
        began = time.monotonic()
        while True:
            if time.monotonic() + delay > deadline:
                raise RunwareError("jobTimeout", task_uuid=task_uuid)
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
            delay = min(max(delay * 1.5, min_delay), max_delay)
            if state.progress and 0 < state.progress < 100:  # linear estimate of the time left
                elapsed = time.monotonic() - began
                delay = min(max(elapsed * (100 - state.progress) / state.progress, 0.1), max_delay)


def _json_or_none(resp: requests.Response) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return None


def _retry_after(resp: requests.Response) -> float | None:
    """`Retry-After` as seconds or an HTTP date, capped so a bad header cannot stall a job for long."""
    value = resp.headers.get("Retry-After")
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
