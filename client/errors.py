"""The one exception every failure of the client turns into.

It carries the server's code (or one of ours) and a sentence written for a person; the operators show
that sentence as it is, so it must never hold the API key.
"""

from __future__ import annotations

from enum import StrEnum


class Code(StrEnum):
    """The codes this add-on names: its own, and the server's it acts on. A misspelt member fails at import;
    the server may send others (kept as the strings they are). Equal to their strings, so a journal or a
    script comparing `error.code == "network"` keeps working."""

    BAD_LIBRARY = "badLibrary"
    BAD_RESPONSE = "badResponse"
    BAD_TASK_UUID = "badTaskUuid"
    CANCELLED = "cancelled"
    CA_BUNDLE_MISSING = "caBundleMissing"
    CONFLICT_TASK_UUID = "conflictTaskUUID"
    CONTENT_POLICY_VIOLATION = "contentPolicyViolation"
    DISK_ERROR = "diskError"
    DOWNLOAD_FAILED = "downloadFailed"
    DUPLICATE_REQUEST = "duplicateRequest"
    DOWNLOAD_TOO_LARGE = "downloadTooLarge"
    FORBIDDEN = "forbidden"
    GLB_EXTERNAL_FILE = "glbExternalFile"
    GLB_MALFORMED = "glbMalformed"
    GLB_TOO_LARGE = "glbTooLarge"
    GLB_UNKNOWN_EXTENSION = "glbUnknownExtension"
    IMAGE_BLOCKED = "imageBlocked"
    INFERENCE_ERROR = "inferenceError"
    INSECURE_HOOK = "insecureHook"
    INSECURE_RESULT_URL = "insecureResultUrl"
    INSECURE_URL = "insecureUrl"
    INSUFFICIENT_CREDITS = "insufficientCredits"
    INTERNAL = "internal"
    INTERNAL_SERVER_ERROR = "internalServerError"
    INVALID_API_KEY = "invalidApiKey"
    INVALID_IMAGE = "invalidImage"
    INVALID_NUMBER_RESULTS = "invalidNumberResults"
    INVALID_SEED = "invalidSeed"
    INVALID_SETTING = "invalidSetting"  # an engine's setting it does not document, or out of its bounds
    INVALID_TTL = "invalidTtl"
    JOB_TIMEOUT = "jobTimeout"
    KEY_IN_RESULT_URL = "keyInResultUrl"
    LOCAL_RESULT_URL = "localResultUrl"
    MISSING_API_KEY = "missingApiKey"
    MODEL_UNAVAILABLE = "modelUnavailable"
    NETWORK = "network"
    NOT_FOUND = "notFound"
    NOT_GLB = "notGlb"
    NO_AVAILABLE_SERVER = "noAvailableServer"
    PROCESSING_FAILED = "processingFailed"
    PROXY_REFUSED = "proxyRefused"
    RATE_LIMIT_EXCEEDED = "rateLimitExceeded"
    RESPONSE_TOO_LARGE = "responseTooLarge"
    RESULT_EXPIRED = "resultExpired"
    SERVICE_UNAVAILABLE = "serviceUnavailable"
    SPENDING_LIMIT = "spendingLimit"
    TASK_FAILED = "taskFailed"
    TASK_FAILED_OR_NOT_FOUND = "taskFailedOrNotFound"
    TASK_LOCKED = "taskLocked"
    TIMEOUT = "timeout"
    TIMEOUT_PROVIDER = "timeoutProvider"
    TLS_UNTRUSTED = "tlsUntrusted"
    UNKNOWN = "unknown"


# Sentences for the codes a user can meet. Codes not listed fall back to the server's own message.
SENTENCES = {
    "glbExternalFile": "The result refers to files outside itself, which a SAM 3D result never does; it was not "
                       "imported, for your safety.",
    "glbMalformed": "The result is a damaged GLB file, so it was not imported.",
    "glbTooLarge": "The result is too large to import safely, so it was not imported.",
    "glbUnknownExtension": "The result needs a glTF extension that this Blender cannot read, so it was not imported.",
    "invalidApiKey": "Runware rejected the API key. Check it in the add-on preferences (or RUNWARE_API_KEY).",
    "missingApiKey": "No Runware API key is set. Paste one in the add-on preferences or set RUNWARE_API_KEY.",
    "insufficientCredits": "Your Runware account has no credits left. Top it up at runware.ai, then try again.",
    "forbidden": "This Runware API key is not allowed to use this model.",
    "timeoutProvider": "The 3D model's provider did not answer in time. Nothing is wrong on your side: try again.",
    "contentPolicyViolation": "Runware refused this image under its content policy.",
    "imageBlocked": "Runware refused this image under its content policy.",
    "rateLimitExceeded": "Runware is limiting requests right now. Wait a little and try again.",
    "serviceUnavailable": "Runware is busy or down right now. Try again in a minute.",
    "noAvailableServer": "Runware has no free server for this model right now. Try again in a minute.",
    "modelUnavailable": "The 3D model is not available on Runware right now. Check the model id in the preferences.",
    "internalServerError": "Runware had an internal error. Try again in a minute.",
    "network": "Cannot reach Runware. Check your internet connection (and any proxy), then try again.",
    "timeout": "Runware did not answer in time. Check your connection and try again.",
    "jobTimeout": "The reconstruction took longer than the time limit set in the preferences.",
    "notGlb": "The downloaded result is not a valid GLB file, so it was not imported.",
    "downloadTooLarge": "The result is larger than the download limit set in the preferences.",
    "downloadFailed": "The result could not be downloaded.",
    "resultExpired": "The result's download link has expired. Run the reconstruction again.",
    "insecureUrl": "Refusing to send the API key over plain HTTP: the API URL must start with https://.",
    "insecureResultUrl": "Runware gave a result address that is not https://, so it was not downloaded.",
    "localResultUrl": "Runware gave a result address on this computer, which only an API on this computer may do, "
                      "so it was not fetched.",
    "keyInResultUrl": "Runware gave a result address that holds your API key, so it was not downloaded (the key "
                      "goes only to the API host). Resume fetches the task again.",
    "badTaskUuid": "That is not a task UUID this add-on made (8-4-4-4-12 lower-case hexadecimal digits), so nothing "
                   "was done.",
    "badResponse": "Runware sent an answer this add-on does not understand.",
    "cancelled": "Cancelled.",
    "invalidTtl": "The result lifetime (ttl) must be at least 60 seconds, or 0 for Runware's default.",
    "invalidSeed": "The seed must be a whole number from 0 to 9223372036854775807.",
    "invalidNumberResults": "Between 1 and 4 results can be asked for.",
    "diskError": "Cannot write to the result folder (set another one in the add-on preferences).",
    "internal": "Something went wrong inside the SAM 3D add-on; the details are in Blender's system console.",
    "taskFailed": "Runware could not reconstruct this object.",
    "inferenceError": "The 3D model failed on this image. Try another mask or seed.",
    "processingFailed": "The 3D model failed on this image. Try another mask or seed.",
    "responseTooLarge": "Runware sent an answer far larger than any this add-on expects, so it was not read.",
    "proxyRefused": "The proxy refused the connection. Check the Proxy setting in the add-on preferences "
                    "(or your system's proxy settings), including its user name and password.",
    "tlsUntrusted": "The server's certificate is not trusted. Behind a company firewall that inspects HTTPS, set "
                    "its certificate (a PEM file) as CA Bundle in the add-on preferences.",
    "caBundleMissing": "The CA Bundle file set in the add-on preferences cannot be read. Pick the PEM file again.",
    "taskFailedOrNotFound": "Runware no longer has this task (it keeps results for a limited time), or it failed.",
    "notFound": "Runware does not know this task any more (it keeps results for a limited time).",
    "insecureHook": "The Webhook URL and Upload Endpoint must start with https://.",
}


class Sam3dError(Exception):
    """A failure with a server's (or the add-on's) `code`, a person's sentence, and what is known about it: what
    every failure of the add-on turns into, from Runware or from here (a disk, a library folder, a limit)."""

    def __init__(
        self,
        code: str,
        message: str = "",
        *,
        status: int | None = None,
        task_uuid: str | None = None,
        parameter: str | None = None,
        retryable: bool = False,
    ) -> None:
        self.code = code or "unknown"
        self.status = status
        self.task_uuid = task_uuid
        self.parameter = parameter
        self.retryable = retryable
        self.sentence = sentence_for(self.code, message, parameter)
        super().__init__(self.sentence)


def sentence_for(code: str, message: str = "", parameter: str | None = None) -> str:
    """Our sentence for a known code; otherwise the server's message, with the code so support can help."""
    detail = message.strip()
    if code in _OWN_SENTENCE and detail:
        return detail
    known = SENTENCES.get(code)
    if known:
        # Keep the server's words when they add something (e.g. which parameter), but lead with ours.
        return f"{known} ({detail})" if detail and detail not in known and code not in _NO_DETAIL else known
    if code.endswith("Expired"):
        return SENTENCES[Code.RESULT_EXPIRED]
    where = f" [{parameter}]" if parameter else ""
    return f"Runware refused the request: {detail or 'no reason given'}{where} (code {code})."


# Codes raised by this add-on with a whole sentence of their own as the message.
_OWN_SENTENCE = {Code.SPENDING_LIMIT, Code.DUPLICATE_REQUEST, Code.TASK_LOCKED, Code.BAD_LIBRARY}

# Codes whose server message adds nothing a person needs (and might quote the request).
_NO_DETAIL = {Code.INVALID_API_KEY, Code.MISSING_API_KEY, Code.CANCELLED, Code.INTERNAL}


def short_error(exc: BaseException) -> str:
    """What an exception from Blender or the system says, in one short line for a report: its last non-empty
    line (Blender's operators put the reason there), without "Error: " or a final dot, at most 200 characters."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return text.removeprefix("Error: ").rstrip(".")[:200]


def redact(text: str, secret: str | None) -> str:
    """Remove a secret from text that is about to be shown or logged."""
    if secret and len(secret) >= 4:
        return text.replace(secret, "***")
    return text


def scrubbed(error: Sam3dError, secret: str | None) -> Sam3dError:
    """The same error with a secret taken out of every field: its sentence, its code, its parameter and its task
    UUID (servers sometimes quote the request, in any field they send back)."""
    if not secret or len(secret) < 4:
        return error
    if secret in error.code:
        error.code = redact(error.code, secret)
    for name in ("parameter", "task_uuid"):
        value = getattr(error, name)
        if isinstance(value, str) and secret in value:
            setattr(error, name, redact(value, secret))
    clean = redact(error.sentence, secret)
    if clean != error.sentence:
        error.sentence = clean
        error.args = (clean,)
    return error


RunwareError = Sam3dError  # its first name, kept for scripts that catch it
