"""Add-on preferences: the API key (or RUNWARE_API_KEY), the endpoint, the model id, limits, result folder.

The key lives here or in the environment only: never in a .blend, a report, a log or a URL.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import bpy
from bpy.props import FloatProperty, IntProperty, StringProperty

from .client import DEFAULT_API_URL, DEFAULT_MODEL, Sam3dError
from .client.engines import ENGINES
from .client.http import check_url, host_of, is_loopback
from .client.tasks import CAPTION_MODEL
from .translations import iface_, tip_

ENV_KEY = "RUNWARE_API_KEY"


def _absolute(prefs: Any, _context: bpy.types.Context) -> None:
    """A `//` path would follow whichever .blend is open, and the journal with it: fix it now. Then the Jobs
    panel shows the new folder's history (and what it offers to resume)."""
    if prefs.result_dir.startswith("//"):
        prefs.result_dir = bpy.path.abspath(prefs.result_dir)
        return  # that assignment calls this again
    from .operators.machinery import runner  # here: preferences register before the operators

    runner.refresh_quietly(result_folder(prefs))


def _https_only(name: str) -> Any:
    """An update callback that empties a result destination that is not https (or this machine's http)."""

    def check(prefs: Any, _context: bpy.types.Context) -> None:
        value = getattr(prefs, name).strip()
        if value and not is_secure_destination(value, prefs.api_url):
            setattr(prefs, name, "")
            print(f"SAM 3D: {name} must start with https:// ({tip_('it was cleared')})")

    check.__name__ = f"_check_{name}"
    return check


def is_secure_destination(url: str, api_url: str) -> bool:
    """https, or this machine only when the API is on it too (client/http.py's one rule for loopback)."""
    try:
        check_url(url, "result URL", local=is_loopback(host_of(api_url)))
    except Sam3dError:
        return False
    return True


class SAM3D_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    api_key: StringProperty(  # type: ignore[valid-type]
        name="API Key", subtype="PASSWORD",
        description=f"Your Runware API key. When empty, the {ENV_KEY} environment variable is used")
    api_url: StringProperty(  # type: ignore[valid-type]
        name="API URL", default=DEFAULT_API_URL, description="Runware's REST endpoint (HTTPS)")
    model: StringProperty(  # type: ignore[valid-type]
        name="Model", default=DEFAULT_MODEL,
        description="Runware model id of SAM 3D Objects; change it when a newer version is published")
    caption_model: StringProperty(  # type: ignore[valid-type]
        name="Caption Model", default=CAPTION_MODEL,
        description="Runware model id that captions objects for Name from Caption (a paid request per object)")
    request_timeout: FloatProperty(  # type: ignore[valid-type]
        name="Request Timeout", default=60.0, min=5.0, max=600.0, unit="TIME_ABSOLUTE",
        description="How long to wait for one answer from Runware or the download host")
    job_timeout: FloatProperty(  # type: ignore[valid-type]
        name="Job Time Limit", default=900.0, min=30.0, max=7200.0, unit="TIME_ABSOLUTE",
        description="Give up on a reconstruction that takes longer than this (it stays in the journal)")
    max_download_mb: IntProperty(  # type: ignore[valid-type]
        name="Largest Download (MB)", default=512, min=1, max=8192,
        description="Refuse results larger than this")
    max_jobs: IntProperty(  # type: ignore[valid-type]
        name="Jobs at Once", default=4, min=1, max=16,
        description="How many reconstructions run at the same time; more wait in line")
    session_budget: FloatProperty(  # type: ignore[valid-type]
        name="Spending Limit", default=0.0, min=0.0, soft_max=100.0, precision=4,
        description="Refuse new jobs once this session has spent this many USD. 0: no limit")
    result_dir: StringProperty(  # type: ignore[valid-type]
        name="Result Folder", subtype="DIR_PATH", default="", update=_absolute,
        description="Where results (GLB files) and the job journal are kept. Empty: the extension's user folder")
    max_photo_megapixels: FloatProperty(  # type: ignore[valid-type]
        name="Largest Photo (MP)", default=100.0, min=1.0, soft_max=400.0,
        description="Refuse photos and masks with more megapixels than this, before reading them (Blender "
                    "holds about 8 bytes per pixel while they are scaled to the size sent)")
    max_triangles: IntProperty(  # type: ignore[valid-type]
        name="Largest Result (triangles)", default=10_000_000, min=1000,
        description="Refuse results with more triangles (or vertices) than this, before Blender imports them")
    proxy: StringProperty(  # type: ignore[valid-type]
        name="Proxy", default="", subtype="PASSWORD",
        description="A proxy for every request, e.g. http://user:password@proxy.example.com:3128. "
                    "Empty: the system's settings (HTTPS_PROXY). Never used for this machine")
    ca_bundle: StringProperty(  # type: ignore[valid-type]
        name="CA Bundle", default="", subtype="FILE_PATH",
        description="A PEM file of the certificate authorities to trust (a company firewall that inspects HTTPS). "
                    "Empty: the usual public ones")
    webhook_url: StringProperty(  # type: ignore[valid-type]
        name="Webhook URL", default="", update=_https_only("webhook_url"),
        description="Runware POSTs each result's JSON there (https only). Kept here, never in a .blend file")
    upload_endpoint: StringProperty(  # type: ignore[valid-type]
        name="Upload Endpoint", default="", update=_https_only("upload_endpoint"),
        description="A presigned URL of your storage: Runware also PUTs the GLB there (https only). "
                    "Kept here, never in a .blend file")
    # What a studio fills once: written on every asset of a library (Blender's asset metadata), never sent.
    asset_author: StringProperty(  # type: ignore[valid-type]
        name="Author", default="", description="The author of the assets a library batch makes (e.g. a studio)")
    asset_license: StringProperty(  # type: ignore[valid-type]
        name="License", default="", description="Their licence, e.g. CC-BY-4.0 or \"All rights reserved\"")
    asset_copyright: StringProperty(  # type: ignore[valid-type]
        name="Copyright", default="", description="Their copyright notice, e.g. © 2026 Studio Name")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        col = _group(layout, "Runware", "WORLD")
        col.prop(self, "api_key")
        if not self.api_key:
            col.label(text=iface_("Using {} from the environment").format(ENV_KEY) if os.environ.get(ENV_KEY)
                      else iface_("No key: paste one, or set {}").format(ENV_KEY), icon="INFO")
        col.prop(self, "api_url")
        col.prop(self, "model")
        for engine in OTHER_ENGINES:
            col.prop(self, engine_model_property(engine.id))
        col.prop(self, "caption_model")
        col.operator("sam3d.test_connection", icon="WORLD")
        for level, text in CONNECTION_REPORT:
            col.label(text=text, icon="ERROR" if level == "ERROR" else "CHECKMARK")
        if not bpy.app.online_access:
            col.label(text=iface_("Online access is off: Preferences › System › Network"), icon="ERROR")
        col = _group(layout, "Network", "URL")
        col.prop(self, "proxy")
        col.prop(self, "ca_bundle")
        col = _group(layout, "Limits", "LOCKED")
        for name in ("request_timeout", "job_timeout", "max_download_mb", "max_triangles", "max_photo_megapixels",
                     "max_jobs", "session_budget"):
            col.prop(self, name)
        col.label(text=iface_("Spending Limit 0: no limit"), icon="INFO")
        col = _group(layout, "Results", "FILE_FOLDER")
        col.prop(self, "result_dir")
        col.label(text=iface_("Results go to {}").format(result_folder(self)), icon="FILE_FOLDER")
        col.prop(self, "webhook_url")
        col.prop(self, "upload_endpoint")
        col.label(text=iface_("Empty: none (https only; kept here, never in a .blend file)"), icon="INFO")
        col = _group(layout, "Asset Library", "ASSET_MANAGER")
        for name in ("asset_author", "asset_license", "asset_copyright"):
            col.prop(self, name)
        layout.label(text=iface_("Disabling the add-on forgets these settings (Blender's rule for add-ons); a key in "
                                 "{} stays").format(ENV_KEY), icon="INFO")


def _group(layout: bpy.types.UILayout, heading: str, icon: str) -> bpy.types.UILayout:
    """A box with its heading drawn, holding a column of labelled settings."""
    box = layout.box()
    box.label(text=heading, icon=icon)  # type: ignore[arg-type]
    col = box.column()
    col.use_property_split = True
    col.use_property_decorate = False
    return col


CONNECTION_REPORT: list[tuple[str, str]] = []  # the last Test Connection's lines, drawn above


def get(context: bpy.types.Context | None = None) -> SAM3D_AddonPreferences:
    context = context or bpy.context
    blender = context.preferences
    assert blender is not None  # Blender's preferences always exist
    return blender.addons[__package__].preferences  # type: ignore[return-value]


def api_key(prefs: SAM3D_AddonPreferences) -> str:
    return (prefs.api_key or os.environ.get(ENV_KEY, "")).strip()


def result_folder(prefs: SAM3D_AddonPreferences) -> Path:
    """The chosen folder, else the extension's user folder (a temp folder when loaded as a plain add-on)."""
    if prefs.result_dir:
        return Path(bpy.path.abspath(prefs.result_dir))
    try:
        return Path(bpy.utils.extension_path_user(__package__, path="results", create=True))
    except ValueError:  # not installed as an extension (e.g. loaded from source)
        return Path(tempfile.gettempdir()) / "sam3d" / "results"


OTHER_ENGINES = [e for e in ENGINES.values() if e.id != "SAM3D"]


def engine_model_property(engine_id: str) -> str:
    return f"model_{engine_id.lower()}"


for _engine in OTHER_ENGINES:  # a newer version of any engine needs no update of the add-on
    SAM3D_AddonPreferences.__annotations__[engine_model_property(_engine.id)] = StringProperty(  # type: ignore[func-returns-value]
        name=f"{_engine.label} Model", default=_engine.model,
        description=f"Runware model id of {_engine.label}; change it when a newer version is published")


def engine_model(prefs: SAM3D_AddonPreferences, engine_id: str) -> str:
    """The model id the preferences give an engine (SAM 3D's is `model`); its default when left empty."""
    name = "model" if engine_id == "SAM3D" else engine_model_property(engine_id)
    return str(getattr(prefs, name, "")).strip() or ENGINES[engine_id].model


classes = (SAM3D_AddonPreferences,)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
