"""The load: pre-signed exchanges, simulated national systems, timed phases, pullers."""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.benchmarks.exchange.options import (
    _KIND_OF_SUFFIX,
    DOCUMENT_KINDS,
    NO_AUTHORITY,
    POLL_PAUSE,
    PT_AUTHORITY,
    ExchangeOptions,
)
from gateway.benchmarks.exchange.processes import (
    NodeProcess,
    Profiler,
    cpu_seconds,
    machine_cpu_seconds,
    self_cpu_seconds,
)
from gateway.benchmarks.exchange.report import (
    Latency,
    PhaseReport,
)
from gateway.core.admission import scoped_id
from gateway.core.docxml import sha256_hex
from gateway.core.errors import GatewayError

_ITEM_ID = re.compile(rb'<Item seq="\d+" messageId="([^"]+)"')
_CURSOR = re.compile(rb'cursor="(\d+)"')
_ERROR_CODE = re.compile(rb"<(?:\w+:)?Code>([A-Z0-9_]+)</")

# --- documents ----------------------------------------------------------------------


@dataclass(frozen=True)
class SignedExchange:
    request: bytes
    acceptance: bytes
    answer: bytes


def presign(
    prefix: str, count: int, no_signer: Any, pt_signer: Any, created: datetime
) -> list[SignedExchange]:
    """``count`` exchanges (request i, acceptance i, answer i), signed by their authorities."""
    from gateway.core.documents import to_xml
    from gateway.testbed import doctor_acceptance, doctor_answer, doctor_request

    out = []
    for i in range(count):
        request = doctor_request(f"{prefix}{i}", NO_AUTHORITY, PT_AUTHORITY, created)
        out.append(
            SignedExchange(
                no_signer.sign(to_xml(request)),
                pt_signer.sign(to_xml(doctor_acceptance(request, created))),
                pt_signer.sign(to_xml(doctor_answer(request, created))),
            )
        )
    return out


def exchange_index(prefix: str, message_id: str) -> tuple[int, str] | None:
    """(exchange number, document kind) of a bench message id of this phase."""
    # Requests carry NO's scoped ids; PT's replies are scoped to PT (testbed.owned_id).
    for owned in (prefix, scoped_id(PT_AUTHORITY, prefix)):
        if message_id.startswith(owned):
            break
    else:
        return None
    number, _, suffix = message_id[len(owned) :].rpartition("-")
    kind = _KIND_OF_SUFFIX.get(suffix)
    if kind is None or not number.isdigit():
        return None
    return int(number), kind


# --- the load -----------------------------------------------------------------------


class SimulatedSystem:
    """A national system of one authority: its signer, an HTTPS client with enough connections."""

    def __init__(self, reactor: Any, setup: Any, authority: str, connections: int) -> None:
        from gateway.testbed import NationalSystem

        national = NationalSystem(reactor, setup, authority, max_connections=connections)
        self.signer = national.signer
        self.client = national.client
        self.node_trust = national.node_trust
        self.base = setup.api_url

    def close(self) -> Any:
        return self.client.close()


class LoadPhase:
    """One timed phase: submissions, pulls, completions, latencies."""

    def __init__(
        self,
        reactor: Any,
        *,
        mode: str,
        prefix: str,
        exchanges: list[SignedExchange],
        no: SimulatedSystem,
        pt: SimulatedSystem,
        options: ExchangeOptions,
        rate: float | None,
        nodes: dict[str, NodeProcess],
    ) -> None:
        self.reactor = reactor
        self.mode = mode
        self.prefix = prefix
        self.exchanges = exchanges
        self.no = no
        self.pt = pt
        self.options = options
        self.rate = rate
        self.nodes = nodes
        self.submitted: dict[tuple[int, str], float] = {}
        self.pulled: dict[tuple[int, str], float] = {}
        self.completed: dict[int, float] = {}
        self.waiting: dict[int, Any] = {}
        self.issued = 0
        self.errors: Counter[str] = Counter()
        self.pool_exhausted = False
        self.window: tuple[float, float] = (0.0, 0.0)
        self.cpu: dict[str, tuple[float, float]] = {}
        self._machine = (0.0, 0.0)
        self.machine_cpu = (math.nan, math.nan)
        self.profiles: dict[str, Path] = {}
        self._profilers: dict[str, Profiler] = {}
        self._pids: dict[str, list[int]] = {}

    def _cpu_of(self, node_id: str) -> float:
        """CPU seconds of a node's processes (supervisor and workers) counted in this window."""
        total = 0.0
        for pid in self._pids[node_id]:
            try:
                total += cpu_seconds(pid)
            except OSError:  # a worker ended in the window: its CPU is lost, say so
                self.errors[f"node {node_id} process ended"] += 1
        return total

    # the pullers call these

    def on_pulled(self, authority: str, ids: list[str], at: float) -> None:
        for message_id in ids:
            key = exchange_index(self.prefix, message_id)
            if key is None or key in self.pulled:
                continue
            self.pulled[key] = at
            number, kind = key
            if kind == "Request" and authority == PT_AUTHORITY:
                self._respond(number)
            elif kind == "Answer" and authority == NO_AUTHORITY:
                self.completed[number] = at
                waiter = self.waiting.pop(number, None)
                if waiter is not None:
                    waiter.callback(None)

    # submissions

    async def _submit(self, system: SimulatedSystem, number: int, kind: str, body: bytes) -> bool:
        self.submitted[(number, kind)] = time.monotonic()
        try:
            answer = await _post(system, body, self.options.verify)
        except Exception as exc:  # network trouble is a result, not a crash
            self.errors[getattr(exc, "code", type(exc).__name__)] += 1
            return False
        if answer is not None:
            self.errors[answer] += 1
            return False
        return True

    def _respond(self, number: int) -> None:
        from twisted.internet.defer import Deferred

        signed = self.exchanges[number]

        async def respond() -> None:
            if await self._submit(self.pt, number, "Acceptance", signed.acceptance):
                await self._submit(self.pt, number, "Answer", signed.answer)

        Deferred.fromCoroutine(respond())

    def _next(self) -> int | None:
        if self.issued >= len(self.exchanges):
            self.pool_exhausted = True
            return None
        number = self.issued
        self.issued += 1
        return number

    async def _closed_worker(self, end: float) -> None:
        from twisted.internet.defer import Deferred

        while time.monotonic() < end:
            number = self._next()
            if number is None:
                return
            done: Deferred[None] = Deferred()
            self.waiting[number] = done
            if not await self._submit(self.no, number, "Request", self.exchanges[number].request):
                self.waiting.pop(number, None)
                continue
            await done

    async def _open_loop(self, start: float, end: float) -> None:
        from twisted.internet.defer import Deferred

        assert self.rate is not None
        interval = 1.0 / self.rate
        while True:
            now = time.monotonic()
            if now >= end:
                return
            due = min(int((now - start) / interval) + 1, len(self.exchanges))
            while self.issued < due:
                number = self.issued
                self.issued += 1
                Deferred.fromCoroutine(
                    self._submit(self.no, number, "Request", self.exchanges[number].request)
                )
            if self.issued >= len(self.exchanges):
                return
            next_at = start + self.issued * interval
            await _sleep(self.reactor, max(0.0, next_at - time.monotonic()))

    async def run(self) -> None:
        from twisted.internet.defer import Deferred, gatherResults

        start = time.monotonic()
        end = start + self.options.duration
        counted_from = start + self.options.warmup

        def window_opens() -> None:
            self.window = (counted_from, end)
            for node_id, node in self.nodes.items():
                self._pids[node_id] = list(node.processes().values())
                self.cpu[node_id] = (self._cpu_of(node_id), 0.0)
            self.cpu["bench"] = (self_cpu_seconds(), 0.0)
            self._machine = machine_cpu_seconds()
            if self.options.profile_dir is not None:
                self._profilers = {
                    label: Profiler(
                        self.options.profile_dir,
                        f"{self.mode}-{label.lower().replace(' ', '-')}",
                        pid,
                        end - counted_from,
                    )
                    for node in self.nodes.values()
                    for label, pid in node.processes().items()
                    if pid != node.pid or node.workers == 1  # the supervisor only waits
                }

        def window_closes() -> None:
            for key, (before, _) in list(self.cpu.items()):
                after = self._cpu_of(key) if key in self.nodes else self_cpu_seconds()
                self.cpu[key] = (before, after)
            busy, steal = machine_cpu_seconds()
            self.machine_cpu = (busy - self._machine[0], steal - self._machine[1])

        def give_up_waiting() -> None:
            # An exchange that never completes (a document refused or lost by a node)
            # must not hold its submitter: it is reported as incomplete.
            waiting, self.waiting = self.waiting, {}
            for waiter in waiting.values():
                if not waiter.called:
                    waiter.callback(None)

        drain_until = end + self.options.drain_seconds
        self.reactor.callLater(self.options.warmup, window_opens)
        self.reactor.callLater(self.options.duration, window_closes)
        give_up = self.reactor.callLater(
            self.options.duration + self.options.drain_seconds, give_up_waiting
        )
        if self.mode == "max":
            workers = [
                Deferred.fromCoroutine(self._closed_worker(end))
                for _ in range(self.options.concurrency)
            ]
            await gatherResults(workers)
        else:
            await Deferred.fromCoroutine(self._open_loop(start, end))
        # Let the window close, then wait for what is in flight.
        await _sleep(self.reactor, max(0.0, end - time.monotonic()) + 0.01)
        while time.monotonic() < drain_until and len(self.completed) < self.issued - sum(
            self.errors.values()
        ):
            await _sleep(self.reactor, 0.05)
        if give_up.active():
            give_up.cancel()
        give_up_waiting()
        for node_id, profiler in self._profilers.items():
            summary = await _in_thread(profiler.finish)
            if summary is not None:
                self.profiles[f"{self.mode}-{node_id}"] = summary

    def report(self, envelopes: dict[str, float]) -> PhaseReport:
        low, high = self.window
        counted = high - low
        exchanges = sum(1 for t in self.completed.values() if low <= t < high)
        delivered = sum(1 for t in self.pulled.values() if low <= t < high)
        samples: dict[str, list[float]] = {kind: [] for kind in DOCUMENT_KINDS}
        for key, sent in self.submitted.items():
            got = self.pulled.get(key)
            if got is not None and low <= sent < high:
                samples[key[1]].append(got - sent)
        all_samples = [s for kind in DOCUMENT_KINDS for s in samples[kind]]
        cpu = {k: after - before for k, (before, after) in self.cpu.items()}
        busy, steal = self.machine_cpu
        cpu["other"] = max(0.0, busy - sum(cpu.values()))
        cpu["stolen"] = steal
        node_cpu = cpu["NO"] + cpu["PT"]
        per_doc = node_cpu / delivered * 1e6 if delivered else math.nan
        incomplete = self.issued - len(self.completed)
        return PhaseReport(
            mode=self.mode,
            offered_rate=self.rate,
            concurrency=self.options.concurrency if self.mode == "max" else None,
            duration_s=self.options.duration,
            counted_s=round(counted, 3),
            exchanges=exchanges,
            exchanges_per_s=exchanges / counted if counted else math.nan,
            documents=delivered,
            documents_per_s=delivered / counted if counted else math.nan,
            latency_ms=Latency.of(all_samples),
            latency_ms_by_type={kind: Latency.of(samples[kind]) for kind in DOCUMENT_KINDS},
            cpu_s={k: round(v, 3) for k, v in cpu.items()},
            cpu_us_per_document=per_doc,
            cpu_us_per_document_by_node={
                k: (cpu[k] / delivered * 1e6 if delivered else math.nan) for k in ("NO", "PT")
            },
            documents_per_envelope=envelopes,
            errors=dict(self.errors),
            incomplete=incomplete,
            pool_exhausted=self.pool_exhausted,
        )


async def _post(system: SimulatedSystem, body: bytes, verify: bool) -> str | None:
    """Submit ``body``; None when the node accepted it, else the error code."""
    answer = await system.client.post(system.base + "/api/v1/documents", body)
    if answer.status != 200:
        match = _ERROR_CODE.search(answer.body)
        return match.group(1).decode() if match else f"HTTP_{answer.status}"
    digest = sha256_hex(body).encode()
    if digest not in answer.body:
        return "RECEIPT_MISMATCH"
    if verify:
        from gateway.core.envelopes import read_receipt
        from gateway.core.signing import verify as verify_signature

        verified = verify_signature(answer.body, system.node_trust, now=datetime.now(UTC))
        receipt = read_receipt(verified.root)
        if [i.sha256 for i in receipt.items] != [digest.decode()]:
            return "RECEIPT_MISMATCH"
    return None


def _sleep(reactor: Any, seconds: float) -> Any:
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)


def _in_thread(func: Callable[[], Any]) -> Any:
    from twisted.internet.threads import deferToThread

    return deferToThread(func)


class Puller:
    """Long-polls one authority's deliveries for the whole run and hands ids to the phase."""

    def __init__(
        self, reactor: Any, system: SimulatedSystem, authority: str, options: ExchangeOptions
    ) -> None:
        self.reactor = reactor
        self.system = system
        self.authority = authority
        self.options = options
        self.phase: LoadPhase | None = None
        self.cursor = 0
        self.errors: Counter[str] = Counter()
        #: Pull requests answered, and those that handed out nothing (reset per phase).
        self.pulls = Counter({"pulls": 0, "empty": 0})
        self._stop = False
        self.done: Any = None

    def start(self) -> None:
        from twisted.internet.defer import Deferred

        self.done = Deferred.fromCoroutine(self._loop())

    async def _loop(self) -> None:

        base = f"{self.system.base}/api/v1/deliveries"
        while not self._stop:
            url = f"{base}?after={self.cursor}&wait={self.options.poll_wait}&limit={self.options.pull_limit}"
            try:
                answer = await self.system.client.get(url)
            except Exception as exc:
                self.errors[getattr(exc, "code", type(exc).__name__)] += 1
                await _sleep(self.reactor, 0.1)
                continue
            at = time.monotonic()
            if answer.status != 200:
                match = _ERROR_CODE.search(answer.body)
                self.errors[match.group(1).decode() if match else f"HTTP_{answer.status}"] += 1
                await _sleep(self.reactor, 0.1)
                continue
            if self.options.verify:
                try:
                    self._verify(answer.body)
                except GatewayError as exc:
                    self.errors[f"verify:{exc.code}"] += 1
            ids = [m.decode() for m in _ITEM_ID.findall(answer.body)]
            self.pulls["pulls"] += 1
            if not ids:
                self.pulls["empty"] += 1
                if self.options.poll_wait == 0:
                    await _sleep(self.reactor, POLL_PAUSE)
            cursor = _CURSOR.search(answer.body)
            if cursor is not None:
                self.cursor = int(cursor.group(1))
            if ids and self.phase is not None:
                self.phase.on_pulled(self.authority, ids, at)
        # acknowledge the last batch
        try:
            await self.system.client.get(f"{base}?after={self.cursor}&wait=0&limit=1")
        except Exception:  # noqa: S110 - the node is about to stop anyway
            pass

    def _verify(self, body: bytes) -> None:
        import base64

        from gateway.core.envelopes import read_delivery
        from gateway.core.signing import verify
        from gateway.core.xmlparse import parse_xml

        root = parse_xml(body)
        now = datetime.now(UTC)
        for item in root:
            read_delivery(
                verify(base64.b64decode(item.text or ""), self.system.node_trust, now=now).root
            )

    def stop(self) -> Any:
        self._stop = True
        return self.done


def _node_problems(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
) -> dict[str, int]:
    """Documents the nodes refused or dead-lettered during a phase, by node and code."""
    problems: dict[str, int] = {}
    for node_id, samples in after.items():
        for key, value in samples.items():
            name, _, labels = key.partition("{")
            if name not in ("imi_documents_refused_total", "imi_dead_letters_total"):
                continue
            delta = int(value - before.get(node_id, {}).get(key, 0.0))
            if delta:
                what = "refused" if name.startswith("imi_documents") else "dead_letters"
                problems[f"node {node_id} {what} {{{labels}"] = delta
    return problems


def _envelope_sizes(before: dict[str, float], after: dict[str, float], peer: str) -> float:
    sent = f'imi_envelope_documents_sent_total{{peer="{peer}"}}'
    count = f'imi_envelope_round_trip_seconds_count{{peer="{peer}"}}'
    docs = after.get(sent, 0.0) - before.get(sent, 0.0)
    envelopes = after.get(count, 0.0) - before.get(count, 0.0)
    return docs / envelopes if envelopes else math.nan
