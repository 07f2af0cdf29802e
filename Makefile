# The usual commands. `make run` and `make test` set everything up first.
.PHONY: run test lint format bench

run:
	scripts/run.sh

test:
	scripts/test.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

format:
	.venv/bin/ruff check --fix . && .venv/bin/ruff format .

bench:
	.venv/bin/python -m bench.indexing
	.venv/bin/python -m bench.retrieval_quality --claims 150 --docs 1200
	.venv/bin/python -m bench.multilingual_retrieval
	.venv/bin/python -m bench.retrieval_latency
	.venv/bin/python -m bench.ingest
	.venv/bin/python -m bench.reply_overhead
	.venv/bin/python -m bench.load
	.venv/bin/python -m bench.answer_quality --openai-server
	.venv/bin/python -m bench.golden_run
	.venv/bin/python -m bench.llm_overhead
	.venv/bin/python -m bench.abuse
	.venv/bin/python -m bench.transcription
	.venv/bin/python -m bench.memory
