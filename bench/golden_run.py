"""What does a golden run cost, and what does it find? Each business of the set gets an assistant with
its document and one golden question per covered question (its expected facts as must-contain). The
run (`backend.services.golden.run_questions`, the job's whole body: the real answer path, the verdicts,
the stored results, the regression count) is timed against the baseline measured in the same process:
the same questions asked straight through `answer_question`. The order of the two alternates per
business. A ratio near 1.00 means the run adds nothing to what answering costs.

    .venv/bin/python -m bench.golden_run [folder] [--engine embedded]
"""

from __future__ import annotations

import argparse
import time

from bench.common import bench_runtime, businesses_parser, run_on_businesses, table


async def _noop(_: float) -> None:
    return None


async def ask_directly(rt, assistant, questions: list[str]) -> float:  # Runtime, Assistant
    from backend.services.answers import answer_question

    started = time.perf_counter()
    for question in questions:
        await answer_question(rt, assistant, question, [])
    return time.perf_counter() - started


async def ask_as_a_run(rt, assistant_id: int) -> tuple[float, int]:  # Runtime
    """Seconds, and questions passed. No workers run here: the job's body is called instead."""
    from backend.services.golden import get_run, request_run, run_questions

    run_id = (await request_run(rt.db, assistant_id)).id
    started = time.perf_counter()
    await run_questions(rt, run_id, _noop)
    elapsed = time.perf_counter() - started
    return elapsed, (await get_run(rt.db, assistant_id, run_id)).passed


async def measure(args: argparse.Namespace, businesses: list[dict], documents: dict[str, str]) -> None:
    from backend.services.assistants import AssistantFields, create_assistant
    from backend.services.golden import GoldenFields, create_question
    from backend.services.knowledge import ingest_texts

    rows = []
    seconds = {"direct": 0.0, "run": 0.0}
    count = passed_total = 0
    async with bench_runtime(args, fresh=True, llm_provider=args.engine) as rt:
        for index, entry in enumerate(businesses):
            fields = AssistantFields(name=entry["name"], instructions=entry["instructions"], temperature=0)
            assistant = await create_assistant(rt.db, fields, rt.settings.ollama_model)
            await ingest_texts(rt, assistant.id, [(entry["document"], documents[entry["document"]])])
            questions = [c["question"] for c in entry["covered"]]
            for covered in entry["covered"]:
                golden = GoldenFields(question=covered["question"], must_contain=covered["expected"])
                await create_question(rt.db, assistant.id, golden)
            if index % 2 == 0:
                direct = await ask_directly(rt, assistant, questions)
                through_run, passed = await ask_as_a_run(rt, assistant.id)
            else:
                through_run, passed = await ask_as_a_run(rt, assistant.id)
                direct = await ask_directly(rt, assistant, questions)
            print(f"  {entry['document']}: {len(questions)} questions, {passed} passed, "
                  f"{through_run:.1f} s as a run, {direct:.1f} s asked directly", flush=True)  # fmt: skip
            rows.append(
                (
                    entry["document"],
                    len(questions),
                    f"{passed / len(questions):.0%}",
                    f"{direct:.2f}",
                    f"{through_run:.2f}",
                    f"{through_run / direct:.2f}",
                )  # fmt: skip
            )
            seconds["direct"] += direct
            seconds["run"] += through_run
            count += len(questions)
            passed_total += passed
    print()
    print(table(["business", "questions", "passed", "direct s", "run s", "run / direct"], rows))
    print(
        f"\n{count} golden questions, {passed_total / count:.0%} passed ({args.engine} engine); "
        f"a run costs {seconds['run'] / count:.2f} s a question, {seconds['run'] / seconds['direct']:.2f}x asking directly"
    )


def main() -> None:
    p = businesses_parser(__doc__)
    p.add_argument("--engine", default="embedded", choices=["embedded", "ollama", "openai", "auto"], help="LLM_PROVIDER")
    run_on_businesses(p.parse_args(), measure)


if __name__ == "__main__":
    main()
