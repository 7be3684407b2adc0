"""Every engine's job through client/jobs.py against the emulator, which checks each request as its model's page
describes it (its own table, written apart from client/engines.py) and answers with a PBR GLB."""

from __future__ import annotations

import pytest

from client import engines, jobs
from client.jobs import Job, JobRequest
from tests.client.conftest import KEY
from tests.emulator import ENGINE_MODELS, cutout_png

OTHERS = [e for e in engines.ENGINES.values() if not e.posed]


def run(emu, tmp_path, engine: engines.Engine, **kwargs) -> Job:
    png = cutout_png(64, 48)
    job = Job(JobRequest(api_key=KEY, result_dir=tmp_path, name="thing", api_url=emu.api_url, poll_first_delay=0.05,
                         prepare=lambda: (png, png), engine=engine.id, model=engine.model, prompt="thing", **kwargs))
    job.start()
    while not job.done:
        job.drain(block=0.1)
    return job


@pytest.mark.parametrize("engine", OTHERS, ids=lambda e: e.id)
def test_each_engine_gets_its_own_input_no_mask_no_prompt_and_a_pbr_result(emu, tmp_path, engine):
    job = run(emu, tmp_path, engine, seed=7 if engine.seed_max is not None else None)
    assert job.outcome.kind == "done", job.outcome.error
    [sent] = [r.body[0] for r in emu.requests if r.body and r.body[0].get("taskType") == "3dInference"]
    key = ENGINE_MODELS[engine.model]["input"]
    assert list(sent["inputs"]) == [key] and "mask" not in sent["inputs"] and "positivePrompt" not in sent
    assert ("seed" in sent) == (engine.seed_max is not None)
    [result] = job.outcome.results
    assert result.cost == ENGINE_MODELS[engine.model]["cost"] and b'"engine_pbr"' in result.path.read_bytes()


@pytest.mark.parametrize("engine", OTHERS, ids=lambda e: e.id)
def test_every_documented_setting_the_registry_sends_the_server_takes(emu, tmp_path, engine):
    """Each setting at a value its bounds allow (the default, else its lowest), through the emulator's own table."""
    values = {}
    for spec in engine.settings:
        value = spec.default if spec.default is not None else (spec.choices[0] if spec.choices else
                                                               False if spec.kind == "bool" else spec.minimum)
        values[spec.name] = int(value) if spec.kind == "int" else value
    values = {k: v for k, v in values.items() if not any(c(values, 1) for c in engine.checks)}
    for check in engine.checks:  # drop what the rules between settings refuse together, one setting at a time
        while check(values, 1):
            values.pop(next(reversed(values)))
    job = run(emu, tmp_path, engine, engine_values=values)
    assert job.outcome.kind == "done", (values, job.outcome.error)


def test_a_setting_out_of_bounds_is_a_sentence_and_nothing_is_sent(emu, tmp_path):
    job = run(emu, tmp_path, engines.ENGINES["TRELLIS2"], engine_values={"textureSize": 1500})
    assert job.outcome.kind == "failed" and job.outcome.error.code == "invalidSetting"
    assert "multiple of 1024" in str(job.outcome.error) and emu.billed_tasks() == 0


def test_the_emulator_refuses_what_a_model_does_not_document(emu, tmp_path, monkeypatch):
    """As Runware does (unsupportedParameter): a request built past the registry's checks is refused, unbilled."""
    built = jobs.engine_task

    def past_the_checks(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        return {**built(*args, **kwargs), "settings": {"samplerSteps": 12}}

    monkeypatch.setattr(jobs, "engine_task", past_the_checks)
    job = run(emu, tmp_path, engines.ENGINES["TRELLIS2"])
    assert job.outcome.kind == "failed" and job.outcome.error.code == "unsupportedParameter"
    assert emu.billed_tasks() == 0
