"""The workload on Sluice: ``sluice dev`` with steps in the WASM or the Docker sandbox.

Runs in the project's venv (the driver's own process). Phases, in order: warm-up (5
runs), burst, unloaded, fairness, then with ``ingest_too`` event ingest (last: the
scheduler reads the ingested events for a while after). The node's resident memory is
sampled every 0.1 s during the burst (and the fairness burst).

Times: *accepted* is when ``POST /e/dev`` answered 200 (the event is in JetStream);
*first step* is the ``time.time()`` the first step returned as its output (the guest
clock is the host clock); *complete* is the run's ``ended_at`` (ms) as the node recorded it.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp

from bench.peers import ingest
from bench.peers.common import (
    Sample,
    Settings,
    burst_report,
    engine_report,
    median_burst,
    percentile,
    stats_ms,
    unloaded_report,
)
from bench.peers.sluice_server import (
    MAIN,
    OTHER,
    SluiceServer,
    any_unfinished,
    get_json,
    post_events,
    runs_by_event,
    wait_event_run,
)

DURABILITY = ("durable: events, jobs and run state in JetStream file storage (embedded nats-server, "
              "default sync: written before the ack, fsync every 2 min); steps recorded by CAS")
WARMUP_RUNS = 5
#: Unloaded runs (the last ones) whose step timings are read back.
TIMING_RUNS = 20
#: Fairness, full and quick: the noisy function's runs, and the other's (one every FAIRNESS_GAP_S).
FAIRNESS_BURST = {False: 10_000, True: 20}  # the "one function bursting 10,000 runs"
FAIRNESS_PROBES = {False: 20, True: 5}
FAIRNESS_GAP_S = 0.1
#: ``sluice dev --executors N`` per sandbox: one more executor process for WASM (steps on
#: the second core: measured 218 -> ~365 runs/s on 2 cores; two more went past the
#: 300 MB memory target for no further gain). None for Docker: a second process (with
#: warm containers of its own) measured slower, 380-412 against 478-491 runs/s in
#: 1,500-run bursts once warm calls travelled on unix sockets (docs/cli.md).
EXECUTORS = {"wasm": 1, "docker": 0}


def new_report(sandbox: str) -> dict[str, Any]:
    """An empty report for Sluice with ``sandbox``; :func:`measure` fills it in phase by phase."""
    extra = EXECUTORS[sandbox]
    label = (f"Sluice {version('sluice')} ({sandbox}{', warm pool' if sandbox == 'docker' else ''}"
             f"{f', --executors {extra}' if extra else ''})")
    report = engine_report(f"sluice-{sandbox}", label, version=version("sluice"), durability=DURABILITY)
    report.update(sandbox=sandbox, durability_short="JetStream file store", executors=extra)
    return report


async def measure(sandbox: str, settings: Settings, report: dict[str, Any], *, ingest_too: bool) -> None:
    """Fill ``report`` for Sluice with ``sandbox`` (``wasm`` or ``docker``), phase by phase,
    so a turn cut short keeps what it measured; raises on failure.

    A phase that left runs unfinished (its wait ran out) would load the next one, so the
    next phase then gets a fresh server (new data dir, warmed up again), and a note says so.
    """
    connector = aiohttp.TCPConnector(limit=settings.in_flight)
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
        async with aiohttp.ClientSession(connector=connector) as session:
            servers = _Servers(Path(tmp), sandbox, session, settings, report)
            try:
                server = await servers.fresh()
                async with _sampler(server) as peak:
                    report["burst"] = burst = median_burst(
                        [await _burst(session, server, settings) for _ in range(settings.bursts)])
                report["memory"] = {"during": "burst", **peak}
                server = await servers.next_phase(burst["completed"] < burst["runs"], "the burst")
                report["unloaded"] = unloaded = await _unloaded(session, server, settings.unloaded, settings)
                server = await servers.next_phase(unloaded["completed"] < unloaded["runs"], "the unloaded phase")
                report["fairness"] = fair = await _fairness(session, server, settings)
                if ingest_too:  # last: the scheduler reads the ingested events for a while after
                    left = fair["burst_completed"] < fair["burst_runs"] or fair["probe_first_step_ms"]["n"] < \
                        fair["probes"]
                    server = await servers.next_phase(left, "the fairness phase")
                    report["ingest"] = await ingest.measure(server.url, quick=settings.burst < 100)
                    servers.stop()  # the bus alone, with nothing else running
                    report["ingest"]["bus_ceiling"] = await ingest.bus_ceiling(quick=settings.burst < 100)
            except Exception as exc:
                exc.add_note(f"sluice dev log: {servers.tail()}")
                raise
            finally:
                servers.stop()


class _Servers:
    """The turn's ``sluice dev`` processes, one at a time, each in its own data dir."""

    def __init__(self, root: Path, sandbox: str, session: aiohttp.ClientSession, settings: Settings,
                 report: dict[str, Any]) -> None:
        self.root, self.sandbox, self.session, self.settings, self.report = root, sandbox, session, settings, report
        self.current: SluiceServer | None = None
        self.started = 0

    async def fresh(self) -> SluiceServer:
        self.stop()
        self.started += 1
        self.current = SluiceServer(self.root / f"node-{self.started}", sandbox=self.sandbox,
                                    executors=EXECUTORS[self.sandbox])
        await self.current.start(self.session)
        await _unloaded(self.session, self.current, WARMUP_RUNS, self.settings)  # compile, warm pools
        return self.current

    async def next_phase(self, backlog: bool, what: str) -> SluiceServer:
        if not backlog and self.current is not None:
            return self.current
        self.report["notes"].append(f"{what} left runs unfinished: the next phase ran on a fresh server")
        return await self.fresh()

    def tail(self) -> str:
        return self.current.tail() if self.current is not None else ""

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()


async def _burst(session: aiohttp.ClientSession, server: SluiceServer, settings: Settings) -> dict[str, Any]:
    gate = asyncio.Semaphore(settings.in_flight)
    samples: dict[str, Sample] = {}

    async def one(i: int) -> None:
        async with gate:
            (event_id,) = await post_events(session, server.url, {"name": MAIN, "data": {"i": i}})
            samples[event_id] = Sample(accepted=time.time())

    started = time.time()
    await asyncio.gather(*(one(i) for i in range(settings.burst)))
    submitted = time.time()
    await _collect(session, server, MAIN, samples, settings.wait_s)
    return burst_report(list(samples.values()), started, submitted)


async def _collect(session: aiohttp.ClientSession, server: SluiceServer, function: str,
                   samples: dict[str, Sample], wait_s: float) -> None:
    """Fill in first-step and completion times of ``samples`` (by event id) as their
    runs finish; gives up after ``wait_s`` (the unfinished keep ``None``)."""
    deadline = time.monotonic() + wait_s
    runs: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        # Two one-row queries while work is in flight; the full listing only once none is.
        if not await any_unfinished(session, server.url, function):
            runs = await runs_by_event(session, server.url, function)
            if all(eid in runs for eid in samples):
                break
        await asyncio.sleep(0.25)
    else:
        runs = await runs_by_event(session, server.url, function)
    for eid, run in runs.items():
        if eid in samples:
            _fill(samples[eid], run)


def _fill(sample: Sample, run: dict[str, Any]) -> None:
    if run["status"] != "completed":
        return
    sample.first_step = float(run["output"]["t0"])
    sample.complete = run["ended_at"] / 1000


async def _unloaded(session: aiohttp.ClientSession, server: SluiceServer, count: int,
                    settings: Settings) -> dict[str, Any]:
    samples = []
    run_ids = []
    deadline = time.monotonic() + settings.phase_s
    for i in range(count):
        if time.monotonic() > deadline:
            break
        (event_id,) = await post_events(session, server.url, {"name": MAIN, "data": {"i": i}})
        sample = Sample(accepted=time.time())
        run = await wait_event_run(session, server.url, event_id, timeout_s=min(30.0, settings.wait_s))
        if run is not None:
            _fill(sample, run)
            run_ids.append(run["id"])
        samples.append(sample)
    report = unloaded_report(samples)
    report["step_timings_ms"] = await _step_timings(session, server, run_ids[-TIMING_RUNS:])
    return report


async def _step_timings(session: aiohttp.ClientSession, server: SluiceServer, run_ids: list[str]) -> dict[str, Any]:
    """Where a sandbox call's time goes, as the node records it for every step attempt
    (``timings``: queue, prepare, sandbox, record ms): the median of each over ``run_ids``."""
    parts: dict[str, list[float]] = {}
    calls = 0
    for run_id in run_ids:
        run = (await get_json(session, f"{server.url}/v1/runs/{run_id}"))["data"]
        for step in run.get("steps") or []:
            calls += 1
            for name, ms in (step.get("timings") or {}).items():
                if name.endswith("_ms") and isinstance(ms, int | float) and not isinstance(ms, bool):
                    parts.setdefault(name, []).append(float(ms))
    return {"runs": len(run_ids), "step_attempts": calls,
            **{f"{name}_p50": round(percentile(values, 50), 2) for name, values in sorted(parts.items())}}


async def _fairness(session: aiohttp.ClientSession, server: SluiceServer, settings: Settings) -> dict[str, Any]:
    """A burst of ``bench/three-steps`` runs (sent in batches of 500) while ``bench/other``
    gets one run every 0.1 s: the other function's latency under the burst."""
    quick = settings.burst < 100
    total = FAIRNESS_BURST[quick]
    noisy: dict[str, Sample] = {}
    probes: dict[str, Sample] = {}

    async def flood() -> None:
        for start in range(0, total, 500):
            batch = [{"name": MAIN, "data": {"f": i}} for i in range(start, min(total, start + 500))]
            ids = await post_events(session, server.url, batch)
            now = time.time()
            noisy.update((eid, Sample(accepted=now)) for eid in ids)

    started = time.time()
    async with _sampler(server) as peak:
        flooding = asyncio.create_task(flood())
        for i in range(FAIRNESS_PROBES[quick]):
            (event_id,) = await post_events(session, server.url, {"name": OTHER, "data": {"probe": i}})
            probes[event_id] = Sample(accepted=time.time())
            await asyncio.sleep(FAIRNESS_GAP_S)
        await flooding
        deadline = time.monotonic() + settings.phase_s
        await _collect(session, server, OTHER, probes, settings.phase_s)
        await _collect(session, server, MAIN, noisy, deadline - time.monotonic())
    burst = burst_report(list(noisy.values()), started, time.time())
    return {
        "sandbox": server.sandbox, "waited_s": settings.phase_s, "burst_runs": total,
        "burst_completed": burst["completed"], "burst_runs_per_s": burst["runs_per_s"],
        "burst_first_step_ms": burst["first_step_ms"],
        "probes": len(probes), "probe_first_step_ms": stats_ms(_lags(probes.values())),
        "probe_complete_ms": stats_ms(None if s.complete is None else s.complete - s.accepted
                                      for s in probes.values()),
        "memory": peak,
    }


def _lags(samples: Any) -> list[float | None]:
    return [None if s.first_step is None else s.first_step - s.accepted for s in samples]


@contextlib.asynccontextmanager
async def _sampler(server: SluiceServer, every_s: float = 0.1) -> Any:
    """Yields a dict that holds, on exit, the peak resident MiB of the node and of nats-server."""
    peak: dict[str, Any] = {"node_peak_mb": None, "nats_peak_mb": None, "samples": 0}

    async def sample() -> None:
        while True:
            node, nats = server.memory_mb()
            if node is not None:
                peak["node_peak_mb"] = round(max(node, peak["node_peak_mb"] or 0.0), 1)
            if nats is not None:
                peak["nats_peak_mb"] = round(max(nats, peak["nats_peak_mb"] or 0.0), 1)
            peak["samples"] += 1
            await asyncio.sleep(every_s)

    task = asyncio.create_task(sample())
    try:
        yield peak
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
