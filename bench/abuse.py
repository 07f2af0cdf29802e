"""Abuse: what anonymous floods cost a running backend, against the same backend at rest.

Starts `python -m backend` (from this checkout, or another with --root, to compare versions) on
an embedded PostgreSQL in a temp folder, then measures:
  - /healthz latency at rest, and while 40 logins run at once (each a real argon2 check);
  - the backend's resident memory while 20 anonymous 20 MB uploads arrive at once.

    python -m bench.abuse [--root PATH] [--logins 40] [--uploads 20] [--upload-mb 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from backend.embedded_db import embedded_database_url
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
ADMIN = {"email": "admin@example.com", "password": "bench-admin-password"}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def healthz_ms(client: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    await client.get("/healthz")
    return (time.perf_counter() - started) * 1000


async def probe_while(client: httpx.AsyncClient, work: asyncio.Future) -> list[float]:
    samples = []
    while not work.done():
        samples.append(await healthz_ms(client))
        await asyncio.sleep(0.01)
    return samples


async def login_flood(client: httpx.AsyncClient, n: int) -> tuple[list[float], list[float], list[int]]:
    at_rest = [await healthz_ms(client) for _ in range(50)]
    flood = asyncio.ensure_future(asyncio.gather(*(client.post("/api/auth/login", json=ADMIN) for _ in range(n))))
    during = await probe_while(client, flood)
    return at_rest, during, sorted(r.status_code for r in await flood)


async def upload_flood(client: httpx.AsyncClient, pid: int, url: str, n: int, size: int) -> tuple[float, float]:
    body = b"x" * size
    before = rss_mb(pid)
    peak = before

    async def one() -> None:
        try:
            await client.post(url, content=body, headers={"Content-Type": "text/plain"})
        except httpx.TransportError:
            pass  # refused and closed before the body was taken

    flood = asyncio.ensure_future(asyncio.gather(*(one() for _ in range(n))))
    while not flood.done():
        peak = max(peak, rss_mb(pid))
        await asyncio.sleep(0.02)
    return before, max(peak, rss_mb(pid))


def summary(samples: list[float]) -> str:
    return f"median {statistics.median(samples):7.1f} ms · max {max(samples):7.1f} ms · n={len(samples)}"


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=ROOT, help="Checkout whose backend is measured")
    p.add_argument("--logins", type=int, default=40)
    p.add_argument("--uploads", type=int, default=20)
    p.add_argument("--upload-mb", type=int, default=20)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-abuse-") as tmp:
        print("starting the embedded PostgreSQL and the backend…", flush=True)
        database_url = await asyncio.to_thread(embedded_database_url, Path(tmp) / "pg")
        port = free_port()
        env = {**os.environ, "DATABASE_URL": database_url, "DATA_DIR": tmp, "PORT": str(port), "RUN_WORKERS": "false"}
        env |= {"ADMIN_EMAIL": ADMIN["email"], "ADMIN_PASSWORD": ADMIN["password"], "LOG_LEVEL": "WARNING"}
        # The throttle off: every login is a real argon2 check, as from many clients at once.
        env |= {"LOGIN_MAX_FAILURES": "1000", "LOGIN_MAX_FAILURES_PER_CLIENT": "1000", "HF_HUB_OFFLINE": "1"}
        log = (Path(tmp) / "backend.log").open("wb")
        backend = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "backend", cwd=args.root, env=env, stdout=log, stderr=log
        )
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
                for _ in range(600):
                    try:
                        if (await client.get("/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.2)
                token = (await client.post("/api/auth/login", json=ADMIN)).json()["token"]
                made = await client.post("/api/assistants", json={"name": "Bench"}, headers={"Authorization": f"Bearer {token}"})
                upload_url = f"/api/assistants/{made.json()['id']}/documents"

                print(f"\n/healthz while {args.logins} logins run at once ({args.root})")
                at_rest, during, statuses = await login_flood(client, args.logins)
                print(f"  at rest : {summary(at_rest)}")
                print(f"  flooded : {summary(during)}")
                print(f"  ratio   : median x{statistics.median(during) / statistics.median(at_rest):.1f}"
                      f" · max x{max(during) / statistics.median(at_rest):.1f}"
                      f" · answers {dict((s, statuses.count(s)) for s in set(statuses))}")  # fmt: skip

                print(f"\nbackend memory while {args.uploads} anonymous {args.upload_mb} MB uploads arrive at once")
                before, peak = await upload_flood(
                    client, backend.pid, upload_url, args.uploads, args.upload_mb * 1024 * 1024 - 4096
                )
                print(f"  RSS at rest {before:.0f} MB · peak {peak:.0f} MB · x{peak / before:.2f}")
        finally:
            backend.terminate()
            await asyncio.wait_for(backend.wait(), 30)
            log.close()


if __name__ == "__main__":
    asyncio.run(main())
