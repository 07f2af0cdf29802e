"""Golden questions: kept per assistant, saved from a thread, run through the real answer path (the
embedded model here), by request and after a change, with a question that passed and now fails
flagged as a regression."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid

import pytest

from backend.app import create_app
from tests.conftest import login, make_settings
from tests.e2e_support import eventually
from tests.fakes.ollama import fake_ollama  # noqa: F401 - fixture
from tests.fakes.waha import backend_with_gateway
from tests.real_models import business
from tests.sandbox_chat import make_sandbox, outbox, write
from tests.servers import serve_app
from tests.test_knowledge_api import upload, wait_indexed
from tests.test_replies_crash import db_rows, start_worker, stop, worker_env
from tests.test_status import scrape

BAKERY = business("bakery.md")
MINIMUM_ORDER = "Whats the minimum order for delivery?"
SUNDAY = "until when are you open on sunday"
# The bakery's document after the owner stopped delivering: the minimum order is gone, the hours stay.
NO_DELIVERY = BAKERY.document.split("## Delivery")[0] + "## Contact\n\n- Phone: 020 555 0187\n"


@pytest.fixture
def settings(database_url, tmp_path, fake_ollama):  # noqa: F811
    """Answers from the fake Ollama, passages found by the real embedder."""
    return make_settings(database_url, tmp_path / "data", ollama_host=fake_ollama.url)


async def add(api, assistant_id: int, **body):
    return await api.post(f"/api/assistants/{assistant_id}/golden", json=body)


async def runs(api, assistant_id: int) -> list[dict]:
    response = await api.get(f"/api/assistants/{assistant_id}/golden/runs")
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def finished_run(api, assistant_id: int, count: int, timeout: float = 300.0) -> dict:  # noqa: ASYNC109
    """The newest run, once there are `count` runs and none is queued or running; with its results."""
    deadline = time.monotonic() + timeout
    while True:
        items = await runs(api, assistant_id)
        if len(items) >= count and all(r["status"] in ("done", "failed") for r in items):
            detail = await api.get(f"/api/assistants/{assistant_id}/golden/runs/{items[0]['id']}")
            return detail.json()
        assert time.monotonic() < deadline, f"runs did not finish: {items}"
        await asyncio.sleep(0.5)


async def run_over(api, assistant_id: int, run_id: int) -> dict | None:
    run = (await api.get(f"/api/assistants/{assistant_id}/golden/runs/{run_id}")).json()
    return run if run["status"] in ("done", "failed") else None


def result_of(run: dict, question: str) -> dict:
    return next(r for r in run["results"] if r["question"] == question)


async def test_golden_questions_are_kept_changed_deleted_and_refused_with_reasons(api):
    created = await api.post("/api/assistants", json={"name": "Shop"})
    assistant_id = created.json()["id"]
    first = await add(api, assistant_id, question="When do you open?", must_contain=["9:00"], must_not_contain=["8:00"])
    assert first.status_code == 201, first.text
    question = first.json()
    assert question["must_contain"] == ["9:00"] and question["last_result"] is None

    refused = {
        "same question": await add(api, assistant_id, question="when do you OPEN?", must_contain=["9"]),
        "nothing to check": await add(api, assistant_id, question="Do you deliver?"),
        "fact too long": await add(api, assistant_id, question="Long?", must_contain=["x" * 201]),
        "unknown field": await add(api, assistant_id, question="Q?", must_contain=["1"], expected=["1"]),
        "neither question nor reply": await add(api, assistant_id, must_contain=["1"]),
        "not a reply": await add(api, assistant_id, reply_id=10**9),
    }
    codes = {what: (r.status_code, r.json()["error"]["code"]) for what, r in refused.items()}
    assert codes["same question"] == (409, "golden_exists")
    assert codes["nothing to check"] == (400, "golden_without_checks")
    assert codes["fact too long"][0] == codes["unknown field"][0] == codes["neither question nor reply"][0] == 400
    assert codes["not a reply"] == (404, "reply_not_found")

    url = f"/api/assistants/{assistant_id}/golden/{question['id']}"
    changed = await api.patch(url, json={"must_contain": ["9:30", "Monday"]})
    assert changed.status_code == 200 and changed.json()["must_contain"] == ["9:30", "Monday"]
    emptied = await api.patch(url, json={"must_contain": [], "must_not_contain": []})
    assert emptied.status_code == 400 and emptied.json()["error"]["code"] == "golden_without_checks"
    second = (await add(api, assistant_id, question="Do you deliver?", must_contain=["yes"])).json()
    clash = await api.patch(f"/api/assistants/{assistant_id}/golden/{second['id']}", json={"question": "WHEN do you open?"})
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "golden_exists"
    listed = (await api.get(f"/api/assistants/{assistant_id}/golden")).json()
    assert [q["question"] for q in listed["items"]] == ["When do you open?", "Do you deliver?"] and listed["total"] == 2

    other = (await api.post("/api/assistants", json={"name": "Other"})).json()["id"]
    assert (await api.delete(f"/api/assistants/{other}/golden/{question['id']}")).status_code == 404
    assert (await api.post(f"/api/assistants/{other}/golden/run")).json()["error"]["code"] == "golden_empty"
    assert (await api.get("/api/assistants/999999/golden")).status_code == 404
    assert (await api.delete(url)).status_code == 204
    assert (await api.delete(url)).status_code == 404


async def test_a_golden_question_saved_from_a_thread_takes_the_customers_question_and_the_replys_facts(api, fake_ollama):  # noqa: F811
    assistant_id, channel_id = await make_sandbox(api)
    uploaded = await upload(api, assistant_id, ("prices.md", b"# Prices\n\nA croissant costs 1.80 euros."))
    assert uploaded.status_code == 201
    await wait_indexed(api, assistant_id)
    fake_ollama.reply = "A croissant costs 1.80 euros [1]."
    assert await write(api, channel_id, "How much is a croissant?") == "stored"
    async with asyncio.timeout(30):
        while not await outbox(api, channel_id):
            await asyncio.sleep(0.05)
    [contact] = (await api.get("/api/contacts")).json()["items"]
    [reply] = [m for m in (await api.get(f"/api/contacts/{contact['id']}/messages")).json()["items"] if m["author"] == "bot"]

    right = await add(api, assistant_id, reply_id=reply["id"], verdict="right")
    assert right.status_code == 201, right.text
    saved = right.json()
    assert (saved["question"], saved["reply_id"]) == ("How much is a croissant?", reply["id"])
    assert (saved["must_contain"], saved["must_not_contain"]) == (["1.80 euros"], [])
    wrong = await add(api, assistant_id, reply_id=reply["id"], verdict="wrong", question="And a croissant for two?")
    assert wrong.status_code == 201 and (wrong.json()["must_contain"], wrong.json()["must_not_contain"]) == ([], ["1.80 euros"])
    again = await add(api, assistant_id, reply_id=reply["id"])
    assert again.status_code == 409 and again.json()["error"]["code"] == "golden_exists"

    other = (await api.post("/api/assistants", json={"name": "Other"})).json()["id"]
    elsewhere = await add(api, other, reply_id=reply["id"])
    assert elsewhere.status_code == 404 and elsewhere.json()["error"]["code"] == "reply_not_found"


async def test_a_change_to_what_answers_queues_one_run_and_other_changes_none(api):
    assistant_id = (await api.post("/api/assistants", json={"name": "Shop"})).json()["id"]
    url = f"/api/assistants/{assistant_id}"
    await api.patch(url, json={"instructions": "Be brief."})
    assert await runs(api, assistant_id) == [], "no golden questions: nothing to run"

    await add(api, assistant_id, question="When do you open?", must_contain=["9:00"])
    await api.patch(url, json={"name": "The shop", "temperature": 0.5})
    assert await runs(api, assistant_id) == []
    await api.patch(url, json={"instructions": "Be very brief."})
    await api.patch(url, json={"model": "llama3.2:1b", "instructions": "Be very brief."})
    [run] = await runs(api, assistant_id)
    assert (run["status"], run["reasons"]) == ("queued", ["instructions", "model"])

    manual = await api.post(f"{url}/golden/run")
    assert manual.status_code == 202 and manual.json()["id"] == run["id"], "a change queued meanwhile joins the run"
    assert manual.json()["reasons"] == ["instructions", "manual", "model"]


async def test_documents_indexed_together_give_one_run_once_the_last_is_ready(api):
    assistant_id = (await api.post("/api/assistants", json={"name": "Shop"})).json()["id"]
    await add(api, assistant_id, question="When do you open?", must_contain=["9:00"])
    files = [(f"notes-{n}.md", f"# Notes {n}\n\nWe open at 9:00. Note number {n}.".encode()) for n in range(4)]
    assert (await upload(api, assistant_id, *files)).status_code == 201
    await wait_indexed(api, assistant_id)
    run = await finished_run(api, assistant_id, 1, timeout=60)
    assert run["reasons"] == ["documents"] and run["status"] == "done"
    assert len(await runs(api, assistant_id)) == 1


async def test_the_oldest_runs_are_deleted_beyond_the_number_kept(database_url, tmp_path, fake_ollama):  # noqa: F811
    settings = make_settings(database_url, tmp_path / "data", ollama_host=fake_ollama.url, golden_runs_kept=2)
    async with serve_app(create_app(settings, name=f"kept_{uuid.uuid4().hex[:8]}")) as backend:
        async with backend.client(await login(backend)) as api:
            assistant_id = (await api.post("/api/assistants", json={"name": "Shop"})).json()["id"]
            await add(api, assistant_id, question="When do you open?", must_not_contain=["10:00"])
            ids = []
            for _ in range(3):
                ids.append((await api.post(f"/api/assistants/{assistant_id}/golden/run")).json()["id"])
                await eventually(lambda: run_over(api, assistant_id, ids[-1]), within=30)
            assert [r["id"] for r in await runs(api, assistant_id)] == ids[:0:-1]
            gone = await api.get(f"/api/assistants/{assistant_id}/golden/runs/{ids[0]}")
            assert gone.status_code == 404 and gone.json()["error"]["code"] == "golden_run_not_found"


@pytest.fixture
def embedded_settings(database_url, tmp_path):
    """The first run's defaults: no Ollama listening, so the embedded model answers."""
    return make_settings(database_url, tmp_path / "data", llm_provider="auto")


async def test_golden_runs_use_the_real_model_and_flag_a_regression_when_a_document_loses_the_fact(embedded_settings):
    async with serve_app(create_app(embedded_settings, name=f"golden_{uuid.uuid4().hex[:8]}")) as backend:
        async with backend.client(await login(backend)) as api:
            # answer_mode generate: by default the bundled demo model is not asked (its answers are quotes).
            policies = {"answer_mode": "generate"}
            body = {"name": BAKERY.name, "instructions": BAKERY.instructions, "temperature": 0, "policies": policies}
            assistant_id = (await api.post("/api/assistants", json=body)).json()["id"]
            assert (await upload(api, assistant_id, (BAKERY.filename, BAKERY.document.encode()))).status_code == 201
            [document] = await wait_indexed(api, assistant_id)
            await add(api, assistant_id, question=MINIMUM_ORDER, must_contain=["15.00"], must_not_contain=["20.00"])
            await add(api, assistant_id, question=SUNDAY, must_contain=["13:00"])

            requested = await api.post(f"/api/assistants/{assistant_id}/golden/run")
            assert requested.status_code == 202 and requested.json()["reasons"] == ["manual"]
            first = await finished_run(api, assistant_id, 1)
            assert (first["status"], first["total"], first["regressions"]) == ("done", 2, 0)
            minimum = result_of(first, MINIMUM_ORDER)
            assert minimum["passed"] and minimum["missing"] == minimum["forbidden"] == [], minimum["answer"]
            assert minimum["engine"] == "embedded" and minimum["degraded_reason"] is None
            assert minimum["sources"][0]["filename"] == "bakery.md" and minimum["timings_ms"]["total"] > 0

            # The owner replaces the document by one without delivery: a run starts by itself.
            assert (await upload(api, assistant_id, ("bakery-2027.md", NO_DELIVERY.encode()))).status_code == 201
            assert (await api.delete(f"/api/assistants/{assistant_id}/documents/{document['id']}")).status_code == 204
            await wait_indexed(api, assistant_id)
            second = await finished_run(api, assistant_id, 2)
            assert "documents" in second["reasons"] and second["status"] == "done"
            lost = result_of(second, MINIMUM_ORDER)
            assert not lost["passed"] and lost["missing"] == ["15.00"] and lost["regression"], lost["answer"]
            assert {r["question"] for r in second["results"]} == {MINIMUM_ORDER, SUNDAY} and second["answered"] == 2

            flagged = (await api.get("/api/golden/regressions")).json()["items"]
            assert [(f["assistant_id"], f["run"]["id"]) for f in flagged] == [(assistant_id, second["id"])]
            assert MINIMUM_ORDER in flagged[0]["questions"]
            assert (await scrape(api))[("wa_golden_regressions", ())] == second["regressions"] >= 1
            listed = (await api.get(f"/api/assistants/{assistant_id}/golden")).json()["items"]
            assert {q["question"]: q["last_result"]["regression"] for q in listed}[MINIMUM_ORDER] is True

            # The fact is back (an FAQ): the next run passes it and its flag goes (a question that still fails keeps its own).
            faq = {"question": "What is the minimum order for delivery?", "answer": "The minimum order is 15.00 euros."}
            assert (await api.post(f"/api/assistants/{assistant_id}/faq", json=faq)).status_code == 201
            third = await finished_run(api, assistant_id, 3)
            assert result_of(third, MINIMUM_ORDER)["passed"], result_of(third, MINIMUM_ORDER)["answer"]
            flagged = (await api.get("/api/golden/regressions")).json()["items"]
            assert all(MINIMUM_ORDER not in f["questions"] for f in flagged), flagged
            history = await runs(api, assistant_id)
            assert [r["reasons"] for r in history][-1] == ["manual"] and len(history) == 3


async def test_a_run_whose_worker_dies_resumes_where_it_stopped_and_keeps_each_result_once(
    fake_ollama,  # noqa: F811
    database_url,
    tmp_path,
):
    fake_ollama.reply, fake_ollama.chat_delay = "We open at 9:00 [1].", 1.0
    fake_ollama.set_models(["llama3.2"])
    async with backend_with_gateway(
        database_url, tmp_path, gateway_provider="sandbox", run_workers=False, ollama_host=fake_ollama.url
    ) as backend:
        settings = backend.app.ctx.settings
        env = worker_env(settings, tmp_path, JOB_LEASE_SECONDS="5")
        results = "SELECT question, created_at FROM golden_results WHERE run_id = $1 ORDER BY question"

        async def some_answered() -> list[dict]:
            return await db_rows(settings.database_url, results, run_id)

        async with backend.client(await login(backend)) as api:
            assistant_id = (await api.post("/api/assistants", json={"name": "Shop"})).json()["id"]
            first = start_worker(env, tmp_path)
            try:
                await upload(api, assistant_id, ("hours.md", b"# Hours\n\nWe open at 9:00 every day."))
                await wait_indexed(api, assistant_id)
                for number in range(3):
                    await add(api, assistant_id, question=f"When do you open ({number})?", must_not_contain=["10:00"])
                run_id = (await api.post(f"/api/assistants/{assistant_id}/golden/run")).json()["id"]
                kept = await eventually(some_answered, within=60)
                first.send_signal(signal.SIGKILL)
                first.wait(timeout=10)
            finally:
                stop(first)
            assert len(kept) < 3, "the run ended before the worker was killed"
            second = start_worker(env, tmp_path)
            try:
                run = await eventually(lambda: run_over(api, assistant_id, run_id), within=60)
            finally:
                stop(second)
    assert (run["status"], run["total"], run["answered"], run["passed"]) == ("done", 3, 3, 3)
    after = await db_rows(settings.database_url, results, run_id)
    assert [r["question"] for r in after] == [f"When do you open ({n})?" for n in range(3)]
    assert [r for r in after if r["question"] in {k["question"] for k in kept}] == kept, "an answered question was asked again"
