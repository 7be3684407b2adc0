"""The package as a user gets it: Blender's builder, Blender's installer, register/unregister, the panels."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import bpy
import pytest
from conftest import MODULE, tick, use_inputs, zip_names

from tests.watch import until, wait_for

ADDON_FILES = {"blender_manifest.toml", "__init__.py", "preferences.py", "properties.py", "translations.py", "LICENSE"}


def test_zip_holds_the_add_on_and_nothing_else(zip_path):
    names = zip_names(zip_path)
    top = {n.split("/")[0] for n in names}
    assert top == ADDON_FILES | {"client", "operators", "panels", "utils"}
    assert all(n.endswith(".py") for n in names if "/" in n)
    assert not [n for n in names if "__pycache__" in n or n.startswith(".")]


def test_installed_as_an_extension_with_its_interface(addon):
    assert addon == MODULE
    module = sys.modules[MODULE]
    assert "/extensions/user_default/sam3d/" in module.__file__.replace("\\", "/")
    assert hasattr(bpy.ops.sam3d, "reconstruct") and hasattr(bpy.ops.sam3d, "cancel")
    for panel in ("SAM3D_PT_view3d", "SAM3D_PT_image"):
        cls = getattr(bpy.types, panel)
        assert cls.bl_category == "SAM 3D" and cls.bl_region_type == "UI"
    fresh = bpy.data.scenes.new("fresh")  # the defaults, whatever an earlier test set on the open scene
    try:
        settings = fresh.sam3d
        assert (settings.num_results, settings.placement, settings.use_random_seed) == (1, "CURSOR", True)
    finally:
        bpy.data.scenes.remove(fresh)
    prefs = bpy.context.preferences.addons[MODULE].preferences
    assert prefs.bl_rna.properties["api_key"].subtype == "PASSWORD"
    assert prefs.bl_rna.properties["api_url"].default == "https://api.runware.ai/v1"
    assert prefs.bl_rna.properties["model"].default == "meta:sam@3d"


class Layout:
    """Stands in for UILayout in a draw() call and checks each property and operator it is given exists."""

    def __init__(self, calls: list) -> None:
        self.calls = calls
        self.enabled = self.use_property_split = self.use_property_decorate = True
        self.scale_y = 1.0

    def _child(self, *args, **kwargs):  # noqa: ANN002, ANN003
        return Layout(self.calls)

    row = column = box = split = _child

    def prop(self, data, name, **kwargs):  # noqa: ANN001, ANN003
        assert name in data.bl_rna.properties, f"no property {name}"
        self.calls.append(("prop", name))

    def template_ID(self, data, name, **kwargs):  # noqa: ANN001, ANN003
        self.prop(data, name)

    def template_list(self, list_type, list_id, data, name, active_data, active_name, **kwargs):  # noqa: ANN001, ANN003
        assert hasattr(bpy.types, list_type), f"no UIList {list_type}"
        self.prop(data, name)
        self.prop(active_data, active_name)

    def operator(self, idname, **kwargs):  # noqa: ANN001, ANN003
        category, op = idname.split(".")
        assert hasattr(getattr(bpy.ops, category), op), f"no operator {idname}"
        self.calls.append(("operator", idname))
        return type("Props", (), {})()

    def label(self, text="", **kwargs):  # noqa: ANN001, ANN003
        self.calls.append(("label", text))

    def progress(self, factor=0.0, text="", **kwargs):  # noqa: ANN001, ANN003
        assert 0.0 <= factor <= 1.0
        self.calls.append(("progress", text))

    def separator(self, **kwargs):  # noqa: ANN003
        pass


def draw(panel: str) -> list:
    calls: list = []
    cls = getattr(bpy.types, panel)
    helpers = {name: getattr(cls, name) for name in ("RECENT",) if hasattr(cls, name)}
    cls.draw(SimpleNamespace(layout=Layout(calls), **helpers), bpy.context)
    return calls


def test_panels_draw_every_setting_and_say_why_reconstruct_is_disabled(sam3d):
    sam3d.settings.masks.add()
    calls = draw("SAM3D_PT_view3d")
    assert ("prop", "masks") in calls and ("operator", "sam3d.masks_load_folder") in calls
    props = {name for kind, name in calls if kind == "prop"}
    assert {"image", "mask", "use_photo_alpha", "prompt", "seed", "num_results", "placement"} <= props
    assert ("operator", "sam3d.reconstruct") in calls
    assert any(kind == "label" and "Pick a photo" in text for kind, text in calls)
    advanced = {name for kind, name in draw("SAM3D_PT_view3d_advanced") if kind == "prop"}
    assert advanced == {"exact_seed", "delivery_method", "ttl", "bake_to_texture", "bake_resolution", "triangle_budget"}
    assert draw("SAM3D_PT_image_advanced")
    library = {name for kind, name in draw("SAM3D_PT_view3d_library") if kind == "prop"}
    assert library == {"batch_directory", "batch_library", "batch_engine", "batch_target_size", "batch_triangle_budget",
                       "batch_bake", "batch_caption", "batch_max_cost"}


def test_the_jobs_panel_shows_history_resume_costs_and_messages(sam3d):
    use_inputs()
    assert bpy.ops.sam3d.reconstruct() == {"FINISHED"}
    sam3d.emu.faults.corrupt_downloads = 99  # a second task, paid, that fails on our side: resumable
    with pytest.raises(RuntimeError):
        bpy.ops.sam3d.reconstruct(allow_duplicate=True)
    sys.modules[f"{MODULE}.operators.machinery.runner"].RUNNER.post("WARNING", "a background job said this")
    calls = draw("SAM3D_PT_view3d_jobs") + draw("SAM3D_PT_view3d_history")
    labels = [text for kind, text in calls if kind == "label"]
    assert any("were sent but never imported" in text for text in labels), "Resume is offered"
    assert ("operator", "sam3d.resume") in calls
    assert "This session: $0.0076" in labels and "Reconstructions here, all sessions: $0.0076" in labels, labels
    assert any("a background job said this" in text for text in labels)
    assert sum(1 for kind, name in calls if kind == "operator" and name == "sam3d.reimport") == 2, "two tasks"
    assert "mask_0: imported" in labels and "mask_0: sent, not imported: Resume fetches it" in labels, labels


def test_panel_shows_a_running_job_with_progress_and_cancel(sam3d, monkeypatch):
    reconstruct = sys.modules[f"{MODULE}.operators.one_object.reconstruct"]
    runner = sys.modules[f"{MODULE}.operators.machinery.runner"]
    sam3d.emu.processing_time = 5
    use_inputs()
    running = reconstruct.start_job(bpy.context)
    try:
        until(lambda: (running.job.drain(block=0.1), running.job.phase == "processing")[1], 10)
        calls = draw("SAM3D_PT_image")
        assert ("progress", running.label) in calls and "Processing" in running.label
        french = {"Processing {}%": "Traitement {} %", "Processing": "Traitement"}  # a translator's locale
        monkeypatch.setattr(runner, "iface_", lambda text: french.get(text, text))
        assert "Traitement" in running.label and "Processing" not in running.label, "the template is translated"
        assert ("operator", "sam3d.cancel") in calls
        assert bpy.ops.sam3d.cancel(task_uuid=running.job.task_uuid) == {"FINISHED"}
        while not running.job.done:
            running.job.drain(block=0.1)
        assert running.job.outcome.error.code == "cancelled"
    finally:
        runner.RUNNER.shutdown(join=2)


def test_disabling_during_a_job_stops_its_thread(sam3d):
    reconstruct = sys.modules[f"{MODULE}.operators.one_object.reconstruct"]
    sam3d.emu.processing_time = 30
    use_inputs()
    job = reconstruct.start_job(bpy.context).job
    wait_for(lambda: sam3d.emu.billed_tasks() == 1)  # in the middle of its polls
    bpy.ops.preferences.addon_disable(module=MODULE)  # cancels, and waits up to 2 s for the threads
    try:
        assert job.join(0) and not job.alive
        assert not [t for t in __import__("threading").enumerate() if t.name.startswith("sam3d-job")]
    finally:
        bpy.ops.preferences.addon_enable(module=MODULE)
    assert hasattr(bpy.ops.sam3d, "reconstruct") and bpy.context.scene.sam3d.num_results == 1


def test_a_job_survives_loading_another_file_and_imports_into_it(sam3d):
    reconstruct = sys.modules[f"{MODULE}.operators.one_object.reconstruct"]
    runner = sys.modules[f"{MODULE}.operators.machinery.runner"]
    sam3d.emu.processing_time = 1.5
    use_inputs()
    running = reconstruct.start_job(bpy.context)
    running.owned = True  # as if a modal operator watched it: loading a file drops that operator
    wait_for(lambda: (running.job.drain(), running.job.phase)[1] in ("queued", "processing"))
    bpy.ops.wm.read_homefile(use_empty=True)
    assert not running.owned, "load_post should hand the job to the app timer"
    until(lambda: (tick(), not runner.RUNNER.jobs)[1], 20)  # tick(): what Blender's app timer calls in the UI
    obj = bpy.data.objects["mask_0"]
    assert obj["sam3d_task_uuid"] == running.job.task_uuid
    assert [c.name for c in obj.users_collection] == ["mask_0"]


def test_poll_explains_itself(sam3d):
    sam3d.settings.image = None
    assert not bpy.ops.sam3d.reconstruct.poll()
    with pytest.raises(RuntimeError, match="Pick a photo"):
        bpy.ops.sam3d.reconstruct()


def test_the_image_open_in_the_image_editor_is_the_photo_until_one_is_chosen_never_a_mask_or_ours(sam3d):
    inputs = sys.modules[f"{MODULE}.operators.machinery.inputs"]
    checks = sys.modules[f"{MODULE}.operators.machinery.checks"]
    photo = bpy.data.images.new("in the editor", 64, 48)
    sam3d.settings.image = None
    sam3d.settings.mask = bpy.data.images.new("the mask", 64, 48)
    common = {"scene": bpy.context.scene, "preferences": bpy.context.preferences}
    editor = SimpleNamespace(space_data=SimpleNamespace(type="IMAGE_EDITOR", image=photo), **common)
    viewport = SimpleNamespace(space_data=SimpleNamespace(type="VIEW_3D"), **common)
    assert inputs.photo_of(editor) is photo and inputs.photo_of(viewport) is None
    assert "Pick a photo" in checks.why_not_reconstruct(viewport)
    assert checks.why_not_reconstruct(editor) == "", "the editor's photo is used"
    editor.space_data.image = sam3d.settings.mask
    assert inputs.photo_of(editor) is None, "the mask shown in the editor is not the photo"
    editor.space_data.image = inputs.mark_made(bpy.data.images.new("a preview", 64, 48), "preview")
    assert inputs.photo_of(editor) is None, "an image the add-on made is never the photo"
    editor.space_data.image = photo
    assert inputs.pin_photo(editor) is photo and sam3d.settings.image is photo, "its first use pins it"
    editor.space_data.image = bpy.data.images.new("another", 64, 48)
    assert inputs.photo_of(editor) is photo, "the pinned photo wins over what the editor shows next"


def test_esc_cancels_only_the_newest_press(sam3d):
    reconstruct = sys.modules[f"{MODULE}.operators.one_object.reconstruct"]
    sam3d.emu.processing_time = 600
    use_inputs()
    first, second = (reconstruct.ModalRun(lambda kind, text: None) for _ in range(2))
    assert first.start(bpy.context)
    sam3d.settings.seed, sam3d.settings.use_random_seed = 7, False  # another request, not a duplicate
    assert second.start(bpy.context)
    assert second.on_event(bpy.context, "ESC", "PRESS") == {"RUNNING_MODAL"}
    runner = sys.modules[f"{MODULE}.operators.machinery.runner"].RUNNER
    assert runner.jobs[second.task_uuid].job.cancel_event.is_set()
    assert not runner.jobs[first.task_uuid].job.cancel_event.is_set(), "the earlier press goes on"
    runner.shutdown(join=5)


def drive(run, timeout: float = 20.0) -> set:  # noqa: ANN001
    """Feed a ModalRun the events Blender would: mouse moves pass through, timer ticks step the job."""
    results: list = []

    def ended() -> bool:
        assert run.on_event(bpy.context, "MOUSEMOVE", "NOTHING") == {"PASS_THROUGH"}
        results.append(run.on_event(bpy.context, "TIMER", "NOTHING"))
        return results[-1] != {"PASS_THROUGH"}

    wait_for(ended, "the modal run ended", timeout)
    return results[-1]


def test_modal_run_steps_the_job_on_timer_ticks_and_imports(sam3d):
    reconstruct = sys.modules[f"{MODULE}.operators.one_object.reconstruct"]
    reports: list = []
    run = reconstruct.ModalRun(lambda kind, text: reports.append((kind, text)))
    sam3d.emu.processing_time = 1.5
    use_inputs()
    assert run.start(bpy.context)
    phases = []
    original = reconstruct.redraw_panels
    running = sys.modules[f"{MODULE}.operators.machinery.runner"].RUNNER.jobs[run.task_uuid]
    reconstruct.redraw_panels = lambda: phases.append(running.job.phase)
    try:
        assert drive(run) == {"FINISHED"}
    finally:
        reconstruct.redraw_panels = original
    assert {"processing", "importing"} <= set(phases)
    assert phases[-2:] == ["importing", "importing"], "the panel shows Importing before the import blocks"
    assert "mask_0" in bpy.data.objects and bpy.data.objects["mask_0"].select_get()
    assert any(kind == {"INFO"} and "added mask_0" in text for kind, text in reports)
    assert not sys.modules[f"{MODULE}.operators.machinery.runner"].RUNNER.jobs


def test_modal_run_esc_cancels(sam3d):
    reconstruct = sys.modules[f"{MODULE}.operators.one_object.reconstruct"]
    reports: list = []
    run = reconstruct.ModalRun(lambda kind, text: reports.append((kind, text)))
    sam3d.emu.processing_time = 30
    use_inputs()
    assert run.start(bpy.context)
    wait_for(lambda: sam3d.emu.billed_tasks() == 1)
    assert run.on_event(bpy.context, "ESC", "PRESS") == {"RUNNING_MODAL"}  # consumed: nothing else reacts
    assert drive(run) == {"CANCELLED"}
    assert any("Cancelled" in text for _, text in reports)
    assert not [o for o in bpy.data.objects if o.name.startswith("mask_0")]
