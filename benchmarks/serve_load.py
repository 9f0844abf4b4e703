"""Load test of ``biseq serve``: micro-batching on and off, against offline batched decoding, same run.

Usage:
    python benchmarks/serve_load.py [--requests 10000] [--unbatched-requests 2000] [--concurrency 32]
                                    [--novel-share 0.05] [--json benchmarks/serve_load.json]

For each request size (1 word, 20 words) a fresh ``biseq serve`` (the bundled English system) is
started, warmed up, and sent ``--requests`` POST /v1/predict requests by ``--concurrency`` clients at
once; then the same with ``--no-batching`` (``--unbatched-requests`` of them: without batching the
model words are decoded one request at a time). Words are drawn from the CMU dictionary, and a
share ``--novel-share`` are compounds of two dictionary words it does not list (they need the
model), seeded. Reports errors (must be 0), p50/p99 latency, words/s, the server's peak RSS, and
offline decoding of the same words in one batched ``biseq.load().predict`` call (after the servers
are stopped, so nothing competes for the cores) in batches of 1,024 words, as the server's, each
batch decoding its own distinct words (and in one call, every distinct word once); ratios have
"ratio" in their names. The server keeps a cache of results (``--cache-words``), so a word asked
again is not decoded again; ``--cache-words 0`` on the server turns it off.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BISEQ = str(Path(sys.executable).with_name("biseq"))
CACHE_WORDS = 100_000
WORKERS = 1


def word_pool(count: int, *, novel_share: float, seed: int = 0) -> list[str]:
    """``count`` words: dictionary words, and ``novel_share`` of compounds the dictionary lacks."""
    from biseq.g2p import load

    dictionary = load().dictionary
    known = sorted(w for w in dictionary if w.isalpha() and 3 <= len(w) <= 10)
    rng = random.Random(seed)
    short = [w for w in known if len(w) <= 5]
    words = []
    while len(words) < count:
        if rng.random() < novel_share:
            word = rng.choice(short) + rng.choice(short)
            if word in dictionary:
                continue
        else:
            word = rng.choice(known)
        words.append(word)
    return words


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(*, batching: bool, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    argv = [BISEQ, "serve", "--port", str(port), "--max-request-words", "64", "--cache-words", str(CACHE_WORDS),
            "--workers", str(WORKERS)]
    argv += [] if batching else ["--no-batching"]
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                # every worker loaded (each logs "ready"): connections made earlier would all stay with the first
                if r.status == 200 and log.read_text(encoding="utf-8").count(" ready") >= WORKERS:
                    return process, url
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the server never became healthy")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``biseq serve --workers N``: the supervisor and its workers)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return found


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of the server, summed over its processes (each one's own peak)."""
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
    return total


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the server's processes have used so far (``/proc/PID/stat``)."""
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _httpx_posts(url: str, concurrency: int):
    """(post, close, its error class): ``post(words)`` -> (status, number of results), with httpx (pure Python
    HTTP/1.1)."""
    import httpx

    client = httpx.AsyncClient(base_url=url, timeout=300, limits=httpx.Limits(max_connections=concurrency))

    async def post(words: list[str]) -> tuple[int, int]:
        response = await client.post("/v1/predict", json={"words": words})
        return response.status_code, len(response.json()["results"]) if response.status_code == 200 else -1

    return post, client.aclose, httpx.HTTPError


async def _aiohttp_posts(url: str, concurrency: int):
    """The same with aiohttp (its HTTP parser is compiled: a fraction of httpx's CPU a request)."""
    import aiohttp

    session = aiohttp.ClientSession(base_url=url, timeout=aiohttp.ClientTimeout(total=300),
                                    connector=aiohttp.TCPConnector(limit=concurrency))

    async def post(words: list[str]) -> tuple[int, int]:
        async with session.post("/v1/predict", json={"words": words}) as response:
            body = await response.json() if response.status == 200 else None
            return response.status, len(body["results"]) if body is not None else -1

    return post, session.close, aiohttp.ClientError


CLIENTS = {"aiohttp": _aiohttp_posts, "httpx": _httpx_posts}


async def load(url: str, requests: list[list[str]], *, concurrency: int, client: str = "aiohttp",
               server_pid: int | None = None) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    queue = list(reversed(requests))
    post, close, http_error = await CLIENTS[client](url, concurrency)
    try:
        async def worker() -> None:
            while queue:
                words = queue.pop()
                started = time.perf_counter()
                try:
                    status, results = await post(words)
                    key = "" if status == 200 and results == len(words) else f"HTTP {status}"
                except http_error as error:
                    key = type(error).__name__
                latencies.append(time.perf_counter() - started)
                if key:
                    errors[key] = errors.get(key, 0) + 1

        cpu = own_cpu_seconds(), process_cpu_seconds(server_pid) if server_pid else 0.0
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        client_cpu = own_cpu_seconds() - cpu[0]
        server_cpu = process_cpu_seconds(server_pid) - cpu[1] if server_pid else None
    finally:
        await close()
    latencies.sort()
    words = sum(len(r) for r in requests)
    return {"requests": len(requests), "words": words, "errors": sum(errors.values()), "error_kinds": errors,
            "seconds": round(seconds, 2), "words_per_second": round(words / seconds, 1),
            "requests_per_second": round(len(requests) / seconds, 1),
            "p50_ms": round(1000 * statistics.median(latencies), 1),
            "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1),
            "client": client, "client_cpu_seconds": round(client_cpu, 2),
            "server_cpu_seconds": None if server_cpu is None else round(server_cpu, 2)}


def scenario(*, size: int, count: int, batching: bool, concurrency: int, pool: list[str], rng: random.Random,
             log: Path, client: str) -> tuple[dict, list[str]]:
    requests = [[rng.choice(pool) for _ in range(size)] for _ in range(count)]
    process, url = start_server(batching=batching, log=log)
    try:
        asyncio.run(load(url, [[rng.choice(pool) for _ in range(size)] for _ in range(64)], concurrency=concurrency,
                         client=client))
        result = asyncio.run(load(url, requests, concurrency=concurrency, client=client, server_pid=process.pid))
        with urllib.request.urlopen(url + "/health") as r:
            result["server_batching"] = json.loads(r.read())["batching"]
        result["server_peak_rss_mb"] = round(peak_rss_mb(process.pid), 1)
    finally:
        process.send_signal(signal.SIGTERM)
        result_code = process.wait(120)
    result["exit_code"] = result_code
    return result, [w for r in requests for w in r]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--unbatched-requests", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--novel-share", type=float, default=0.05)
    parser.add_argument("--sizes", default="1,20")
    parser.add_argument("--json", default="benchmarks/serve_load.json")
    parser.add_argument("--log-dir", default="runs/serve_load")
    parser.add_argument("--cache-words", type=int, default=100_000, help="the server's result cache (0: none)")
    parser.add_argument("--workers", type=int, default=1, help="biseq serve --workers (server processes)")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="aiohttp",
                        help="the load generator's HTTP client (it shares the cores with the server)")
    args = parser.parse_args()
    global CACHE_WORDS, WORKERS
    CACHE_WORDS, WORKERS = args.cache_words, args.workers
    os.makedirs(args.log_dir, exist_ok=True)

    pool = word_pool(20_000, novel_share=args.novel_share)
    results: dict = {"concurrency": args.concurrency, "novel_share": args.novel_share, "cpus": os.cpu_count(),
                     "client": args.client, "server_workers": args.workers}
    sent: list[str] = []
    for size in (int(s) for s in args.sizes.split(",")):
        for batching in (True, False):
            rng = random.Random(size)  # the same requests with and without batching (a prefix when fewer)
            name = f"{size}_words_{'batched' if batching else 'unbatched'}"
            count = args.requests if batching else args.unbatched_requests
            result, words = scenario(size=size, count=count, batching=batching, concurrency=args.concurrency,
                                     pool=pool, rng=rng, log=Path(args.log_dir) / f"{name}.log", client=args.client)
            results[name] = result
            if batching:
                sent += words
            print(name, json.dumps({k: v for k, v in result.items() if k != "server_batching"}), flush=True)
        results[f"{size}_words_batched_over_unbatched_ratio"] = round(
            results[f"{size}_words_batched"]["words_per_second"] / results[f"{size}_words_unbatched"]["words_per_second"],
            2)

    from biseq.g2p import load as load_g2p

    g2p = load_g2p()
    g2p.predict(sent[:2000])  # compile
    started = time.perf_counter()
    for start in range(0, len(sent), 1024):  # batches as large as the server's, each decoding its own words
        g2p.predict(sent[start : start + 1024])
    offline = len(sent) / (time.perf_counter() - started)
    results["offline_batched_words_per_second"] = round(offline, 1)
    started = time.perf_counter()
    g2p.predict(sent)  # one call: every distinct word decoded once (what the server's cache approaches)
    results["offline_one_call_words_per_second"] = round(len(sent) / (time.perf_counter() - started), 1)
    for size in (int(s) for s in args.sizes.split(",")):
        results[f"{size}_words_served_over_offline_ratio"] = round(
            results[f"{size}_words_batched"]["words_per_second"] / offline, 3)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    print(json.dumps({k: v for k, v in results.items() if "ratio" in k or k.startswith("offline")}, indent=1))


if __name__ == "__main__":
    main()
