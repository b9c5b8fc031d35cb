"""``onebox bench chat | ingest | retrieve``: the command line of the load generator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from onebox.loadtest.http import Client
from onebox.loadtest.ingest import BenchError, IngestPlan, call, resolve_collection, run_ingest
from onebox.loadtest.report import (
    print_ingest_report,
    print_load_report,
    sample_rows,
    write_json,
    write_plot,
)
from onebox.loadtest.runner import ARRIVALS, Load, Request, Sample, run_load
from onebox.loadtest.stats import summarize
from onebox.loadtest.workloads import ChatWorkload, SearchWorkload

bench_app = typer.Typer(
    help="Load-test a running Onebox or any OpenAI-compatible server.", no_args_is_help=True
)
console = Console()
errors = Console(stderr=True)
T = TypeVar("T")

Url = Annotated[
    str, typer.Option("--url", help="The server's root (http://host:port) or OpenAI base URL.")
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar=["ONEBOX_BENCH_API_KEY", "OPENAI_API_KEY"],
        help="Sent as 'Authorization: Bearer …' (env ONEBOX_BENCH_API_KEY or OPENAI_API_KEY).",
    ),
]
JsonOut = Annotated[Path | None, typer.Option("--json", help="Write the full report here.")]
PlotOut = Annotated[
    Path | None,
    typer.Option("--plot", help="Write a PNG: latency distribution and throughput over time."),
]
Rate = Annotated[
    float | None,
    typer.Option(help="Requests per second (open loop). Without it: --concurrency clients."),
]
Concurrency = Annotated[
    int | None,
    typer.Option(help="Clients back to back; with --rate, the most in flight (burst: workers)."),
]
ArrivalOption = Annotated[
    str,
    typer.Option(help=f"With --rate: {', '.join(a for a in ARRIVALS if a != 'closed')}."),
]
Duration = Annotated[
    float | None, typer.Option(help="Seconds to send for (default 10 unless --requests).")
]
Requests = Annotated[int | None, typer.Option(help="Number of requests to send.")]
Warmup = Annotated[int, typer.Option(help="Requests sent first and not measured.")]
Timeout = Annotated[float, typer.Option(help="Seconds before one request counts as failed.")]
Insecure = Annotated[bool, typer.Option(help="Do not verify the server's TLS certificate.")]
Seed = Annotated[int, typer.Option(help="Seed of arrival times and generated text.")]


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _root(url: str) -> str:
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def _load(
    rate: float | None,
    concurrency: int | None,
    arrival: str,
    duration: float | None,
    requests: int | None,
    seed: int,
) -> Load:
    if duration is None and requests is None:
        duration = 10.0
    try:
        return Load(
            arrival="closed" if rate is None else arrival,  # type: ignore[arg-type]
            rate=rate,
            concurrency=concurrency if (rate is not None or concurrency) else 1,
            duration=duration,
            requests=requests,
            seed=seed,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(work())
    return uvloop.run(work())


async def _measure(
    load: Load, request: Request, warmup: int, label: str
) -> tuple[list[Sample], float]:
    for _ in range(warmup):
        await request(None)
    until = load.requests if load.requests is not None else load.duration
    counts = {"ok": 0, "failed": 0}
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        refresh_per_second=4,
    ) as progress:
        task: TaskID = progress.add_task(label, total=until, counts="")

        def on_sample(sample: Sample) -> None:
            counts["ok" if sample.ok else "failed"] += 1

        async def tick(begin: float) -> None:
            while True:
                done = counts["ok"] + counts["failed"]
                position = done if load.requests is not None else time.perf_counter() - begin
                text = f"{counts['ok']} ok, {counts['failed']} failed"
                progress.update(task, completed=position, counts=text)
                await asyncio.sleep(0.25)

        ticker = asyncio.create_task(tick(time.perf_counter()))
        try:
            return await run_load(load, request, on_sample)
        finally:
            ticker.cancel()


def _finish(report: dict[str, Any], json_out: Path | None, plot_out: Path | None) -> None:
    if json_out is not None:
        write_json(json_out, report)
        console.print(f"report: {json_out}")
    if plot_out is not None:
        try:
            write_plot(plot_out, report)
        except RuntimeError as exc:
            errors.print(f"[red]{exc}[/red]", highlight=False)
            raise typer.Exit(2) from exc
        console.print(f"plot: {plot_out}")


def _load_report(
    mode: str, target: str, load: Load, config: dict[str, Any], run: tuple[list[Sample], float]
) -> dict[str, Any]:
    samples, begin = run
    return {
        "mode": mode,
        "target": target,
        "load": load.describe(),
        "config": config,
        "summary": summarize(samples, begin),
        "samples": sample_rows(samples, begin),
    }


async def _first_model(client: Client) -> str:
    listed = await call(client, "GET", "/models")
    models = listed.get("data") or []
    if not models:
        raise BenchError("the server lists no models; name one with --model")
    return str(models[0]["id"])


@bench_app.command()
def chat(
    url: Url = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
    model: Annotated[
        str | None, typer.Option(help="Model name (default: the first /v1/models lists).")
    ] = None,
    stream: Annotated[bool, typer.Option(help="Stream the replies (SSE).")] = True,
    rate: Rate = None,
    concurrency: Concurrency = None,
    arrival: ArrivalOption = "poisson",
    duration: Duration = None,
    requests: Requests = None,
    prompt_tokens: Annotated[int, typer.Option(help="Prompt length, about.")] = 32,
    max_tokens: Annotated[int, typer.Option(help="Output length asked for.")] = 64,
    warmup: Warmup = 5,
    timeout: Timeout = 120.0,
    insecure: Insecure = False,
    seed: Seed = 0,
    json_out: JsonOut = None,
    plot: PlotOut = None,
) -> None:
    """Chat completions: TTFT, inter-token latency, end-to-end latency and throughput."""
    load = _load(rate, concurrency, arrival, duration, requests, seed)
    base = _root(url) + "/v1"

    async def work() -> dict[str, Any]:
        client = Client(base, headers=_headers(api_key), timeout=timeout, verify=not insecure)
        try:
            name = model or await _first_model(client)
            workload = ChatWorkload(
                client, name, stream=stream, prompt_tokens=prompt_tokens,
                max_tokens=max_tokens, seed=seed,
            )  # fmt: skip
            run = await _measure(load, workload, warmup, f"chat {name}")
            config = {"model": name, "stream": stream, "prompt_tokens": prompt_tokens,
                      "max_tokens": max_tokens, "warmup": warmup, "arrival": load.arrival,
                      "rate": load.rate, "concurrency": load.concurrency,
                      "duration": load.duration, "requests": load.requests}  # fmt: skip
            return _load_report("chat", f"{base}/chat/completions", load, config, run)
        finally:
            client.close()

    report = _guarded(work)
    print_load_report(console, report)
    _finish(report, json_out, plot)


@bench_app.command()
def retrieve(
    collection: Annotated[list[str], typer.Option(help="Collection id or name (repeatable).")],
    url: Url = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
    query: Annotated[
        list[str] | None, typer.Option(help="Search text (repeatable; default: generated).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Passages per search.")] = 5,
    mode: Annotated[str, typer.Option(help="hybrid, dense or keyword.")] = "hybrid",
    rate: Rate = None,
    concurrency: Concurrency = None,
    arrival: ArrivalOption = "poisson",
    duration: Duration = None,
    requests: Requests = None,
    warmup: Warmup = 5,
    timeout: Timeout = 60.0,
    insecure: Insecure = False,
    seed: Seed = 0,
    json_out: JsonOut = None,
    plot: PlotOut = None,
) -> None:
    """``POST /api/search`` on a running Onebox: latency percentiles and requests/s."""
    load = _load(rate, concurrency, arrival, duration, requests, seed)
    root = _root(url)

    async def work() -> dict[str, Any]:
        client = Client(root, headers=_headers(api_key), timeout=timeout, verify=not insecure)
        try:
            ids = [(await resolve_collection(client, wanted))["id"] for wanted in collection]
            queries = query or _default_queries(seed)
            workload = SearchWorkload(client, ids, queries, limit=limit, mode=mode)
            run = await _measure(load, workload, warmup, "search")
            config = {"collections": ids, "queries": len(queries), "limit": limit,
                      "search_mode": mode, "warmup": warmup, "arrival": load.arrival,
                      "rate": load.rate, "concurrency": load.concurrency,
                      "duration": load.duration, "requests": load.requests}  # fmt: skip
            return _load_report("retrieve", f"{root}/api/search", load, config, run)
        finally:
            client.close()

    report = _guarded(work)
    print_load_report(console, report)
    _finish(report, json_out, plot)


def _default_queries(seed: int) -> list[str]:
    import random

    from onebox.loadtest.workloads import make_prompt

    rng = random.Random(seed)  # noqa: S311 - query text, not secrets
    return [make_prompt(6, rng) for _ in range(32)]


@bench_app.command()
def ingest(
    url: Url = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
    documents: Annotated[int, typer.Option(help="Documents to upload.")] = 50,
    words: Annotated[int, typer.Option(help="Words per generated document.")] = 800,
    batch: Annotated[int, typer.Option(help="Files per upload request.")] = 10,
    concurrency: Annotated[int, typer.Option(help="Upload requests in flight.")] = 2,
    collection: Annotated[
        str | None,
        typer.Option(help="Upload into this collection (id or name; kept). Default: a new one."),
    ] = None,
    keep: Annotated[bool, typer.Option(help="Keep the new collection afterwards.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds for everything to be indexed.")] = 600.0,
    insecure: Insecure = False,
    seed: Seed = 0,
    json_out: JsonOut = None,
) -> None:
    """Upload generated documents, then time them until indexed: docs/s and chunks/s."""
    root = _root(url)
    plan = IngestPlan(documents=documents, words=words, batch=batch, concurrency=concurrency,
                      collection=collection, keep=keep, timeout=timeout, seed=seed)  # fmt: skip

    async def work() -> dict[str, Any]:
        client = Client(root, headers=_headers(api_key), timeout=max(timeout, 60.0),
                        verify=not insecure)  # fmt: skip
        try:
            with Progress(
                TextColumn("[bold]{task.description}"), BarColumn(),
                TextColumn("{task.fields[counts]}"), TimeElapsedColumn(),
                console=console, transient=True, refresh_per_second=4,
            ) as progress:  # fmt: skip
                task = progress.add_task("indexing", total=documents, counts="")

                def show(uploaded: int, ready: int, failed: int) -> None:
                    counts = f"{uploaded} uploaded, {ready} ready, {failed} failed"
                    progress.update(task, completed=ready + failed, counts=counts)

                summary = await run_ingest(client, plan, show)
        finally:
            client.close()
        config = {"documents": documents, "words": words, "batch": batch,
                  "concurrency": concurrency, "collection": collection}  # fmt: skip
        return {"mode": "ingest", "target": root, "config": config, "summary": summary}

    report = _guarded(work)
    print_ingest_report(console, report)
    _finish(report, json_out, None)


def _guarded(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        return _run(work)
    except (BenchError, OSError, ValueError) as exc:
        errors.print(f"[red]bench failed[/red]: {exc}", highlight=False)
        raise typer.Exit(1) from exc


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")


__all__ = ["bench_app", "register"]
