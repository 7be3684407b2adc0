"""Pure-Python access to SAM 3D Objects on Runware, and the rules around it: bounded HTTP, money, the journal,
locks, the GLB gate. Never imports bpy (docs/architecture.md)."""

from .errors import Code, RunwareError, Sam3dError
from .jobs import Event, Job, JobRequest, Result
from .journal import Journal, TaskRecord
from .runware import DEFAULT_API_URL, RunwareClient
from .tasks import DEFAULT_MODEL

__all__ = ["DEFAULT_API_URL", "DEFAULT_MODEL", "Code", "Event", "Job", "JobRequest", "Journal", "Result",
           "RunwareClient", "RunwareError", "Sam3dError", "TaskRecord"]
