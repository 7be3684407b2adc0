"""client/engines.py: each engine's `3dInference` task holds its documented input key and only documented keys,
and anything else is refused before it is sent. The documented keys below are copied from the sources
docs/engines.md cites (Runware's generated SDK types and the per-model input table), not from the registry."""

from __future__ import annotations

from typing import Any

import pytest

from client import engines, tasks
from client.engines import ENGINES, EngineError
from client.errors import Sam3dError

U = "0bfd1f7c-213a-4cc4-b44d-ce9eace8e1c3"
COMMON = {"taskType", "taskUUID", "model", "webhookURL", "includeCost", "numberResults", "uploadEndpoint", "ttl",
          "outputType", "outputFormat", "deliveryMethod"}
# Top-level keys each model's schema declares (runware-python runware/types/task_map.py, schemas 20260623192341).
DOCUMENTED = {
    "SAM3D": COMMON | {"inputs", "positivePrompt", "seed"},
    "TRELLIS2": COMMON | {"inputs", "seed", "settings"},
    "HUNYUAN_PRO": COMMON | {"inputs", "positivePrompt", "settings"},
    "HUNYUAN_RAPID": COMMON | {"inputs", "positivePrompt", "settings"},
    "TRIPO": COMMON | {"inputs", "positivePrompt", "negativePrompt", "seed", "settings"},
    "RODIN": COMMON | {"inputs", "positivePrompt", "seed", "settings"},
    "MESHY": COMMON | {"inputs", "positivePrompt", "settings"},
}
# Which input key the image goes under (maximhq/bifrost, from schemas.runware.ai/resolve/<model>).
INPUT_KEY = {"SAM3D": "image", "TRELLIS2": "image", "HUNYUAN_PRO": "images", "HUNYUAN_RAPID": "image",
             "TRIPO": "images", "RODIN": "images", "MESHY": "images"}
MODEL_IDS = {"SAM3D": "meta:sam@3d", "TRELLIS2": "microsoft:trellis-2@4b", "HUNYUAN_PRO": "tencent:hunyuan-3d@3.1-pro",
             "HUNYUAN_RAPID": "tencent:hunyuan-3d@3.1-rapid", "TRIPO": "tripo:v3.1@0", "RODIN": "hyper3d:rodin@gen-2",
             "MESHY": "meshy:meshy@6"}
SETTINGS = [(e.id, s) for e in ENGINES.values() for s in e.settings]


def image_request(engine_id: str, **kwargs: Any) -> dict[str, Any]:
    mask = "mask-uuid" if engine_id.upper() == "SAM3D" else None
    return engines.request(engine_id, image="img-uuid", mask=mask, **kwargs)


def a_valid_value(setting: engines.Setting) -> Any:
    if setting.kind == "bool":
        return True
    if setting.kind == "enum":
        return setting.choices[-1]
    return setting.maximum if setting.kind == "int" else (setting.minimum or 0) + 0.5


def test_the_engines_are_the_issues_seven_in_its_order_with_their_model_ids():
    assert list(ENGINES) == list(MODEL_IDS)
    assert {e.id: e.model for e in ENGINES.values()} == MODEL_IDS
    assert [e.id for e in ENGINES.values() if e.posed] == ["SAM3D"]


@pytest.mark.parametrize("engine_id", list(ENGINES))
def test_an_image_request_has_the_documented_input_key_and_only_documented_keys(engine_id):
    task = image_request(engine_id, task_uuid=U)
    assert set(task) <= DOCUMENTED[engine_id], set(task) - DOCUMENTED[engine_id]
    key = INPUT_KEY[engine_id]
    assert task["inputs"][key] == ("img-uuid" if key == "image" else ["img-uuid"])
    assert set(task["inputs"]) == ({"image", "mask"} if engine_id == "SAM3D" else {key})
    assert (task["taskType"], task["taskUUID"], task["model"]) == ("3dInference", U, MODEL_IDS[engine_id])
    assert (task["includeCost"], task["outputType"], task["outputFormat"], task["deliveryMethod"]) == (
        True, "URL", "GLB", "async")


@pytest.mark.parametrize("engine_id", list(ENGINES))
def test_every_documented_setting_is_sent_under_its_key_and_stays_within_the_documented_keys(engine_id):
    spec = ENGINES[engine_id]
    for setting in spec.settings:
        values = {setting.name: a_valid_value(setting)}
        if engine_id == "MESHY" and setting.name in {"topology", "polyCount", "decimation"}:
            values["remesh"] = True
        if engine_id == "MESHY" and setting.name == "origin":
            values["autoSize"] = True
        if engine_id == "HUNYUAN_PRO" and setting.name == "polygonType":
            values["generateType"] = "LowPoly"
        if engine_id == "RODIN" and setting.name == "polyCount":
            values["meshMode"] = "Raw"
        task = image_request(engine_id, values=values)
        assert set(task) <= DOCUMENTED[engine_id]
        node: Any = task
        for part in setting.key:
            node = node[part]
        assert node == values[setting.name]


@pytest.mark.parametrize("engine_id", [e.id for e in ENGINES.values() if e.accepts_text])
def test_a_text_engine_takes_a_prompt_alone_and_sends_no_inputs(engine_id):
    task = engines.request(engine_id, prompt="  a red vintage sports car ")
    assert task["positivePrompt"] == "a red vintage sports car" and "inputs" not in task
    assert set(task) <= DOCUMENTED[engine_id]


@pytest.mark.parametrize("engine_id", [e.id for e in ENGINES.values() if e.input_kind == "images"])
def test_a_multi_view_engine_takes_up_to_its_maximum_of_images_in_order(engine_id):
    most = ENGINES[engine_id].max_images
    views = [f"view-{i}" for i in range(most)]
    assert engines.request(engine_id, images=views)["inputs"] == {"images": views}
    with pytest.raises(EngineError, match=f"at most {most}"):
        engines.request(engine_id, images=[*views, "one-too-many"])


@pytest.mark.parametrize("engine_id", list(ENGINES))
def test_lower_case_ids_and_model_ids_name_the_same_engine(engine_id):
    assert engines.engine(engine_id.lower()) is ENGINES[engine_id]
    assert engines.engine(f" {engine_id.lower()} ") is ENGINES[engine_id]
    assert engines.engine(MODEL_IDS[engine_id]) is ENGINES[engine_id]
    assert image_request(engine_id.lower(), task_uuid=U) == image_request(engine_id, task_uuid=U)


def test_sam3d_request_is_exactly_what_inference_task_builds():
    kwargs: dict[str, Any] = {"prompt": "the toy robot", "seed": 90625, "task_uuid": U, "number_results": 3,
                              "ttl": 120, "webhook_url": "https://hook", "upload_endpoint": "https://put"}
    mine = engines.request("sam3d", image="img", mask="msk", model="meta:sam@3d", **kwargs)
    assert mine == tasks.inference_task(image="img", mask="msk", model="meta:sam@3d", **kwargs)
    assert engines.request("sam3d", image="img", mask="msk", prompt="", task_uuid=U) == tasks.inference_task(
        image="img", mask="msk", prompt="", task_uuid=U)


def test_sam3d_refuses_what_inference_task_refuses_and_what_it_cannot_take():
    with pytest.raises(Sam3dError):
        engines.request("sam3d", image="img", mask="msk", seed=-1)
    with pytest.raises(EngineError, match="mask"):
        engines.request("sam3d", image="img")
    with pytest.raises(EngineError, match="no settings"):
        engines.request("sam3d", image="img", mask="msk", values={"textureSize": 2048})


@pytest.mark.parametrize("bad", ["", "sam2", "trellis", "meta:sam@4d", "hunyuan pro"])
def test_an_unknown_engine_is_refused_naming_the_engines(bad):
    with pytest.raises(EngineError, match="trellis2"):
        engines.engine(bad)
    with pytest.raises(EngineError):
        engines.request(bad, image="img")


@pytest.mark.parametrize("engine_id", list(ENGINES))
def test_an_unknown_setting_is_refused(engine_id):
    with pytest.raises(EngineError):
        image_request(engine_id, values={"notASetting": 1})


def test_a_setting_of_another_engine_is_refused():
    assert "faceLimit" in {s.name for s in ENGINES["TRIPO"].settings}
    with pytest.raises(EngineError, match="faceLimit"):
        image_request("TRELLIS2", values={"faceLimit": 5000})


@pytest.mark.parametrize(("engine_id", "setting"), [(e, s) for e, s in SETTINGS if s.kind in ("int", "float")],
                         ids=lambda v: getattr(v, "name", v))
def test_numeric_bounds_are_enforced_and_the_edges_accepted(engine_id, setting):
    context = {"meshMode": "Raw"} if setting.name == "polyCount" and engine_id == "RODIN" else {}
    if engine_id == "MESHY" and setting.name in {"polyCount", "decimation"}:
        context = {"remesh": True}
    for edge in (setting.minimum, setting.maximum):
        image_request(engine_id, values={**context, setting.name: edge})
    step = setting.step or 1
    for outside in (setting.minimum - step, setting.maximum + step, float("nan"), "100", True):
        with pytest.raises(EngineError, match=setting.name):
            image_request(engine_id, values={**context, setting.name: outside})


@pytest.mark.parametrize(("engine_id", "setting"), [(e, s) for e, s in SETTINGS if s.kind in ("enum", "bool")],
                         ids=lambda v: getattr(v, "name", v))
def test_enum_and_bool_settings_refuse_any_other_value(engine_id, setting):
    for wrong in ("not-a-choice", 1, None):
        with pytest.raises(EngineError, match=setting.name):
            image_request(engine_id, values={setting.name: wrong})


def test_trellis_texture_size_must_be_a_multiple_of_1024():
    image_request("trellis2", values={"textureSize": 3072})
    with pytest.raises(EngineError, match="multiple of 1024"):
        image_request("trellis2", values={"textureSize": 2500})


@pytest.mark.parametrize(("engine_id", "values"), [
    ("MESHY", {"polyCount": 20_000, "decimation": 2, "remesh": True}),
    ("MESHY", {"topology": "quad"}),
    ("MESHY", {"origin": "bottom"}),
    ("MESHY", {"texture": False, "pbr": True}),
    ("RODIN", {"quality": "high", "polyCount": 18_000}),
    ("RODIN", {"polyCount": 500}),  # Quad, the default mesh mode, starts at 1,000
    ("HUNYUAN_PRO", {"generateType": "Geometry", "pbr": True}),
    ("HUNYUAN_PRO", {"polygonType": "quadrilateral"}),
    ("HUNYUAN_RAPID", {"geometryOnly": True, "pbr": True}),
    ("TRIPO", {"quad": True, "faceLimit": 10_001}),  # 500-10,000 with quads, 20,000 without
])
def test_the_documented_rules_between_settings_are_enforced(engine_id, values):
    with pytest.raises(EngineError):
        image_request(engine_id, values=values)


def test_tripo_takes_20000_faces_of_triangles_but_10000_of_quads():
    assert image_request("tripo", values={"faceLimit": 20_000})["settings"] == {"faceLimit": 20_000}
    assert image_request("tripo", values={"faceLimit": 10_000, "quad": True})["settings"]["faceLimit"] == 10_000


def test_meshy_takes_a_prompt_of_600_characters_and_refuses_a_longer_one():
    assert len(engines.request("meshy", prompt="x" * 600)["positivePrompt"]) == 600
    with pytest.raises(EngineError, match="at most 600 characters, not 601"):
        engines.request("meshy", prompt="x" * 601)


def test_meshy_image_enhancement_needs_an_image():
    assert image_request("meshy", values={"imageEnhancement": False})["settings"] == {"imageEnhancement": False}
    with pytest.raises(EngineError, match="image"):
        engines.request("meshy", prompt="a crate", values={"imageEnhancement": False})


def test_hunyuan_rapid_geometry_only_is_sent_without_an_output_format():
    task = image_request("hunyuan_rapid", values={"geometryOnly": True})
    assert "outputFormat" not in task and task["settings"] == {"geometryOnly": True}
    assert image_request("hunyuan_rapid", values={"geometryOnly": False})["outputFormat"] == "GLB"


@pytest.mark.parametrize("engine_id", list(ENGINES))
def test_a_seed_goes_only_to_an_engine_whose_schema_declares_one(engine_id):
    if "seed" not in DOCUMENTED[engine_id]:
        with pytest.raises(EngineError, match="no seed"):
            image_request(engine_id, seed=1)
    else:
        assert image_request(engine_id, seed=0)["seed"] == 0
        with pytest.raises((EngineError, Sam3dError)):
            image_request(engine_id, seed=-1)


def test_rodin_seeds_stop_at_65535_as_runware_documents():
    assert image_request("rodin", seed=65_535)["seed"] == 65_535
    with pytest.raises(EngineError, match="65535"):
        image_request("rodin", seed=65_536)


@pytest.mark.parametrize("engine_id", [e for e in ENGINES if e != "SAM3D"])
def test_inputs_an_engine_cannot_take_are_refused(engine_id):
    with pytest.raises(EngineError, match="mask"):
        engines.request(engine_id, image="img", mask="msk")
    with pytest.raises(EngineError):
        engines.request(engine_id)  # nothing to build from
    if ENGINES[engine_id].accepts_text:
        with pytest.raises(EngineError, match="not both"):
            engines.request(engine_id, image="img", prompt="a chair")
    else:
        with pytest.raises(EngineError, match="image"):
            engines.request(engine_id, prompt="a chair")


def test_a_single_image_engine_refuses_two():
    with pytest.raises(EngineError, match="at most 1"):
        engines.request("trellis2", image="a", images=["b"])


def test_the_delivery_options_follow_inference_tasks_rules():
    task = image_request("tripo", number_results=2, ttl=300, webhook_url="https://hook", task_uuid=U)
    assert (task["numberResults"], task["ttl"], task["webhookURL"]) == (2, 300, "https://hook")
    with pytest.raises(Sam3dError):
        image_request("tripo", ttl=30)
    with pytest.raises(Sam3dError):
        image_request("tripo", number_results=5)


def test_a_model_override_is_sent_as_given():
    assert image_request("rodin", model="hyper3d:rodin@gen-1")["model"] == "hyper3d:rodin@gen-1"


def test_prices_a_reservation_can_use_are_never_below_what_is_documented():
    for spec in ENGINES.values():
        assert spec.worst_case_price > 0
        assert spec.documented_price is None or spec.worst_case_price >= spec.documented_price


def test_every_setting_label_fits_the_panels_label_column():
    """The Reconstruct panel splits each setting's row into label and value: at the default sidebar width 12
    characters show whole (Texture Size, seen in the real window); "Decimation Target" read "Decimation Ta…"."""
    long = [(e.id, s.label) for e in ENGINES.values() for s in e.settings if len(s.label) > 12]
    assert not long, long


def test_which_settings_ask_an_engine_for_quads():
    assert ENGINES["TRIPO"].wants_quads({"quad": True}) and not ENGINES["TRIPO"].wants_quads({})
    assert ENGINES["RODIN"].wants_quads({}), "Rodin's mesh mode is Quad unless Raw is asked"
    assert not ENGINES["RODIN"].wants_quads({"meshMode": "Raw"})
    assert ENGINES["MESHY"].wants_quads({"topology": "quad"}) and not ENGINES["MESHY"].wants_quads({})
    assert ENGINES["HUNYUAN_PRO"].wants_quads({"polygonType": "quadrilateral"})
    assert not any(ENGINES[e].wants_quads({}) for e in ("SAM3D", "TRELLIS2", "HUNYUAN_RAPID"))
