"""What does the reply pipeline add to a real model's answer?

Starts an embedded PostgreSQL, a fake WAHA on loopback and the real backend (`python -m backend`,
LLM_PROVIDER=embedded: SmolLM2-135M in llama.cpp, in the backend's process) with the bakery's
document. Customers write one at a time (closed loop: each waits for the previous reply, so
nothing queues); a message's latency runs from posting its webhook to the fake WAHA receiving
the reply's sendText. Then, in the same run and on the same machine, the floor: this process
loads the same GGUF with the same settings and times a bare `Llama.create_chat_completion` of
exactly the prompts the pipeline sent (rebuilt from each reply's stored sources with the same
prompt builder; the token counts are compared to prove it). Temperature 0 on both sides, so
both generate the same tokens.

    .venv/bin/python -m bench.llm_overhead --messages 24
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncpg

from bench.common import BUSINESSES, load_businesses, percentile, quiet_logs, table
from bench.ingest import backend_env, seed_waha_channel, start_database, start_process, stop_process, waha_webhook, wait_ready
from bench.reply_overhead import ADMIN, FakeWahaSends
from rag.llm.embedded import REPEAT_PENALTY
from rag.prompt import build_prompt
from rag.types import Passage
from tests.servers import free_port


async def add_document(base_url: str, assistant_id: int, name: str, content: bytes) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        async with http.post("/api/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]}) as response:
            token = (await response.json())["token"]
        headers = {"Authorization": f"Bearer {token}"}
        form = aiohttp.FormData()
        form.add_field("files", content, filename=name, content_type="text/markdown")
        async with http.post(f"/api/assistants/{assistant_id}/documents", data=form, headers=headers) as response:
            assert response.status == 201, await response.text()
        for _ in range(1200):
            async with http.get(f"/api/assistants/{assistant_id}/documents", headers=headers) as response:
                if (await response.json())["items"][0]["status"] == "ready":
                    return
            await asyncio.sleep(0.1)
    raise SystemExit("the document was not indexed within two minutes")


async def closed_loop(url: str, gateway: FakeWahaSends, questions: list[str], prefix: str) -> list[float]:
    """Each question from a new customer, one after the other; ms from webhook to sendText."""
    latencies = []
    async with aiohttp.ClientSession() as http:
        for i, question in enumerate(questions):
            digits = f"1777{i:07d}" if prefix == "run" else f"1778{i:07d}"
            chat = f"{digits}@c.us"
            body, headers = waha_webhook(digits, question, f"false_{prefix}_{i}")
            posted = time.perf_counter()
            async with http.post(url, data=body, headers=headers) as response:
                assert response.status == 200, await response.text()
            deadline = posted + 120
            while chat not in gateway.received and time.perf_counter() < deadline:
                await asyncio.sleep(0.002)
            if chat not in gateway.received:
                raise SystemExit(f"no reply to {question!r} within two minutes")
            latencies.append((gateway.received[chat] - posted) * 1000)
    return latencies


async def sent_prompts(url: str) -> list[dict | None]:
    """Per bot reply in order: the prompt the pipeline built (rebuilt from its stored sources) and its
    trace; None for a reply no model wrote (the fallback)."""
    conn = await asyncpg.connect(url)
    try:
        replies = await conn.fetch(
            """
            SELECT r.trace::text AS trace, q.text AS question, a.instructions
            FROM messages r JOIN messages q ON q.id = r.reply_to_id
            JOIN channels ch ON ch.id = r.channel_id JOIN assistants a ON a.id = ch.assistant_id
            WHERE r.author = 'bot' AND q.provider_message_id LIKE 'false_run_%' ORDER BY r.id
            """
        )
        found = []
        for reply in replies:
            trace = json.loads(reply["trace"])
            if not trace.get("engine"):
                found.append(None)
                continue
            sent = await conn.fetch(
                """
                SELECT c.id, c.document_id, d.filename, c.position, c.heading, c.content
                FROM unnest($1::bigint[]) WITH ORDINALITY AS ids(id, n)
                JOIN chunks c ON c.id = ids.id JOIN documents d ON d.id = c.document_id ORDER BY ids.n
                """,
                trace["prompt_chunk_ids"],
            )
            passages = [
                Passage(r["id"], r["document_id"], r["filename"], r["position"], r["heading"] or "", r["content"], 0.0)
                for r in sent
            ]
            answer_tokens = trace["context_limit"] // 4
            prompt = build_prompt(
                instructions=reply["instructions"],
                question=reply["question"],
                passages=passages,
                history=[],
                context_limit=trace["context_limit"],
                answer_tokens=min(512, answer_tokens),
            )
            found.append({"messages": prompt.messages, "trace": trace, "max_tokens": min(512, answer_tokens)})
        return found
    finally:
        await conn.close()


def bare_completions(prompts: list[dict], model_path: str, context_tokens: int) -> tuple[list[float], int]:
    """The floor: the same prompts straight into llama.cpp; ms each, and how many matched the
    pipeline's prompt and answer token counts."""
    from llama_cpp import Llama

    llama = Llama(model_path=model_path, n_ctx=context_tokens, n_threads=os.cpu_count(), verbose=False)
    llama.create_chat_completion(messages=prompts[0]["messages"], temperature=0.0, max_tokens=8)  # warm-up
    timings, same, rows = [], 0, []
    for prompt in prompts:
        started = time.perf_counter()
        # As many answer tokens as the pipeline's model wrote: batch sizes differ with the prompt
        # cache's state, so greedy decoding can part ways after a while on either side.
        response = llama.create_chat_completion(
            messages=prompt["messages"], temperature=0.0, max_tokens=prompt["trace"]["eval_count"], repeat_penalty=REPEAT_PENALTY
        )
        timings.append((time.perf_counter() - started) * 1000)
        usage = response["usage"]
        trace = prompt["trace"]
        same += usage["prompt_tokens"] == trace["prompt_eval_count"] and usage["completion_tokens"] == trace["eval_count"]
        rows.append(
            (trace["prompt_eval_count"], usage["prompt_tokens"], trace["eval_count"], usage["completion_tokens"], timings[-1])
        )
    llama.close()
    print(table(["prompt tokens (pipeline)", "(bare)", "answer tokens (pipeline)", "(bare)", "bare ms"], rows))
    return timings, same


async def measure(args: argparse.Namespace, data_dir: Path) -> None:
    from rag.llm.embedded import bundled_model_path

    model_path = str(args.model or bundled_model_path())
    businesses, _ = load_businesses(BUSINESSES)
    bakery = next(b for b in businesses if b["document"] == args.document)
    questions = [q["question"] for q in bakery["covered"]]
    questions = (questions * (args.messages // len(questions) + 1))[: args.messages]

    document = (BUSINESSES / args.document).read_bytes()
    url = await start_database(data_dir)
    channel_id = await seed_waha_channel(url)
    conn = await asyncpg.connect(url)
    try:
        assistant_id = await conn.fetchval(
            # answer_mode generate: by default (auto) the bundled demo model is never asked, its answers quoted.
            "UPDATE assistants SET temperature = 0, instructions = $2,"
            " settings = coalesce(settings, '{}'::jsonb) || '{\"answer_mode\": \"generate\"}'::jsonb"
            " WHERE id = (SELECT assistant_id FROM channels WHERE id = $1) RETURNING id",
            channel_id,
            bakery["instructions"],
        )
    finally:
        await conn.close()
    gateway = FakeWahaSends()
    gateway_runner = await gateway.start()
    port = free_port()
    env = backend_env(
        url,
        port,
        data_dir,
        WAHA_URL=gateway.url,
        LLM_PROVIDER="embedded",
        LLM_MODEL_PATH=model_path,
        LLM_CONTEXT_TOKENS=str(args.context_tokens),
        ADMIN_EMAIL=ADMIN[0],
        ADMIN_PASSWORD=ADMIN[1],
    )
    backend = start_process(["-m", "backend"], env, data_dir)
    try:
        await wait_ready(f"http://127.0.0.1:{port}", backend)
        await add_document(f"http://127.0.0.1:{port}", assistant_id, args.document, document)
        target = f"http://127.0.0.1:{port}/webhooks/waha/{channel_id}"
        await closed_loop(target, gateway, questions[:3], "warm")  # loads the model and the embedder
        latencies = await closed_loop(target, gateway, questions, "run")
        replies = await sent_prompts(url)
    finally:
        stop_process(backend)
        await gateway_runner.cleanup()

    # Only the replies a model wrote: a fallback asks no model, so it has no floor to compare with.
    pipeline = [ms for ms, reply in zip(latencies, replies, strict=True) if reply is not None]
    prompts = [reply for reply in replies if reply is not None]
    engines = {p["trace"].get("engine") for p in prompts}
    bare, same = await asyncio.to_thread(bare_completions, prompts, model_path, args.context_tokens)
    print(
        f"\n{len(questions)} customer questions ({len(prompts)} answered by the model) one at a time (closed loop) "
        f"to the bakery assistant, fake WAHA, "
        f"engine {', '.join(sorted(e or 'none' for e in engines))} ({Path(model_path).name}), temperature 0; "
        f"burst window and typing pause 0 s; {os.cpu_count()} CPUs\n"
    )
    rows = [
        ("bare create_chat_completion (floor)", len(bare), percentile(bare, 50), percentile(bare, 90), max(bare)),
        (
            "webhook -> sendText through the backend",
            len(pipeline),
            percentile(pipeline, 50),
            percentile(pipeline, 90),
            max(pipeline),
        ),
    ]
    print(
        table(
            ["path", "answers", "p50 ms", "p90 ms", "max ms"],
            [(n, c, round(a, 1), round(b, 1), round(m, 1)) for n, c, a, b, m in rows],
        )
    )
    generation = [p["trace"]["timings_ms"].get("generation", 0.0) for p in prompts]
    print(
        f"\nsame prompt and answer tokens on both sides: {same} of {len(prompts)}; generation inside the pipeline: "
        f"p50 {percentile(generation, 50):.1f} ms"
    )
    ratio = percentile(pipeline, 50) / percentile(bare, 50)
    print(f"ratio of the totals (every answer counted) = {sum(pipeline) / sum(bare):.3f}")
    print(f"ratio p50 pipeline / bare = {ratio:.3f} (goal <= 1.15) -> {'MET' if ratio <= 1.15 else 'NOT MET'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=24, help="customer questions, answered one after the other")
    p.add_argument("--document", default="bakery.md", help="a business of tests/fixtures/businesses")
    p.add_argument("--model", default=None, help="GGUF file (default: the bundled SmolLM2-135M-Instruct)")
    p.add_argument("--context-tokens", type=int, default=4096, help="LLM_CONTEXT_TOKENS on both sides")
    args = p.parse_args()
    quiet_logs()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-llm-"))
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    asyncio.run(measure(args, data_dir))


if __name__ == "__main__":
    main()
