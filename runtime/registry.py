"""The function registry: what functions exist, where their code runs, what triggers them.

Filled by running ``introspect`` *inside the sandbox* for each app (the host never
imports a user's module). Matching an event is a dict lookup by name, then the
compiled CEL ``if`` of each candidate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from runtime.cron import TIMER_EVENT, check_cron
from runtime.expressions import ExpressionError, compile_expression, matches
from runtime.limits import RuntimeLimits
from sandboxes import Limits, Sandbox, SandboxError, Target
from sluice.protocol import ProtocolError, decode_introspection, pack

log = structlog.get_logger("sluice.registry")

INTROSPECT_TIMEOUT_S = 60.0


class RegistryError(Exception):
    """An app could not be registered; the message says which and why."""


@dataclass(frozen=True)
class FunctionDef:
    app: str
    id: str
    name: str
    triggers: tuple[dict[str, Any], ...]
    retries: int
    timeout_ms: int
    target: Target
    sandbox: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def fqid(self) -> str:
        return f"{self.app}/{self.id}"

    @property
    def crons(self) -> list[dict[str, Any]]:
        return [t for t in self.triggers if "cron" in t]

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.fqid, "app": self.app, "slug": self.id, "name": self.name,
            "triggers": list(self.triggers), "retries": self.retries, "timeout_ms": self.timeout_ms,
            "sandbox": self.sandbox, "target": {"kind": self.target.kind, "ref": self.target.ref,
                                                **({"reuse": True} if self.target.reuse else {})},
        }


@dataclass(frozen=True)
class AppSource:
    """Where an app's code is and which sandbox runs it."""

    target: Target
    sandbox: str


def discover(app_dir: Path, python_sandbox: str) -> list[AppSource]:
    """Apps in ``app_dir``: an ``app.py`` there or one level down is a Python app;
    every ``*.wasm`` / ``*.wat`` there or one level down is a WASM module app."""
    if not app_dir.is_dir():
        raise RegistryError(f"app directory {app_dir} does not exist")
    found: list[AppSource] = []
    for d in [app_dir, *sorted(p for p in app_dir.iterdir() if p.is_dir() and not p.name.startswith("."))]:
        if (d / "app.py").is_file():
            found.append(AppSource(Target(kind="python", ref=str(d.resolve())), python_sandbox))
        for mod in sorted([*d.glob("*.wasm"), *d.glob("*.wat")]):
            found.append(AppSource(Target(kind="module", ref=str(mod.resolve())), "wasm"))
    return found


class Registry:
    def __init__(self, sandboxes: dict[str, Sandbox], limits: RuntimeLimits) -> None:
        self._sandboxes = sandboxes
        self._limits = limits
        self._functions: dict[str, FunctionDef] = {}
        self._by_event: dict[str, list[FunctionDef]] = {}

    def sandbox_for(self, fn: FunctionDef) -> Sandbox:
        return self._sandboxes[fn.sandbox]

    async def introspect(self, source: AppSource) -> list[FunctionDef]:
        """Run ``introspect`` in the app's sandbox and return its checked functions."""
        sandbox = self._sandboxes.get(source.sandbox)
        if sandbox is None:
            raise RegistryError(f"no {source.sandbox} sandbox on this node for {source.target.ref}")
        where = source.target.ref
        try:
            await sandbox.prepare(source.target)
            result = await sandbox.run(
                source.target, pack({"v": 1, "kind": "introspect"}), Limits(timeout_s=INTROSPECT_TIMEOUT_S)
            )
        except SandboxError as exc:
            raise RegistryError(f"{where}: {exc}") from None
        if not result.ok:
            logs = result.stderr.decode("utf-8", "replace").strip()[-2000:]
            raise RegistryError(f"{where}: introspect failed: {result.error}" + (f"\n{logs}" if logs else ""))
        try:
            doc = decode_introspection(result.stdout)
        except ProtocolError as exc:
            raise RegistryError(f"{where}: bad introspect response: {exc}") from None
        if doc.get("reuse_instances") and source.target.kind == "python":  # the app opted in (sluice.App)
            source = dataclasses.replace(source, target=dataclasses.replace(source.target, reuse=True))
        return [self._function(doc["app"], fn, source) for fn in doc["functions"]]

    def _function(self, app: str, fn: dict[str, Any], source: AppSource) -> FunctionDef:
        triggers: list[dict[str, Any]] = []
        for trig in fn["triggers"]:
            if isinstance(trig, dict) and isinstance(trig.get("cron"), str):
                try:
                    check_cron(trig["cron"], trig.get("tz"))
                except ValueError as exc:
                    raise RegistryError(f"{app}/{fn['id']}: {exc}") from None
                triggers.append({"cron": trig["cron"], "tz": trig.get("tz")})
                continue
            if not isinstance(trig, dict) or not isinstance(trig.get("event"), str):
                raise RegistryError(f"{app}/{fn['id']}: each trigger needs 'event' or 'cron' (a string)")
            cond = trig.get("if")
            for expr in (cond, fn.get("idempotency")):
                if expr is not None:
                    try:
                        compile_expression(expr)
                    except ExpressionError as exc:
                        raise RegistryError(f"{app}/{fn['id']}: {exc}") from None
            triggers.append({"event": trig["event"], "if": cond})
        timeout = fn.get("timeout_ms") or self._limits.step_timeout_ms
        timeout = min(int(timeout), self._limits.step_timeout_cap_ms)
        retries = fn.get("retries")
        return FunctionDef(
            app=app, id=fn["id"], name=str(fn.get("name") or fn["id"]), triggers=tuple(triggers),
            retries=self._limits.retries if retries is None else int(retries), timeout_ms=timeout,
            target=source.target, sandbox=source.sandbox, raw=fn,
        )

    def replace_app(self, app: str, functions: Iterable[FunctionDef]) -> None:
        """Swap in an app's functions (a reload drops the ones that disappeared)."""
        kept = {k: f for k, f in self._functions.items() if f.app != app}
        for fn in functions:
            kept[fn.fqid] = fn
        self._functions = kept
        index: dict[str, list[FunctionDef]] = {}
        for fn in kept.values():
            for name in {trig["event"] for trig in fn.triggers if "event" in trig}:
                index.setdefault(name, []).append(fn)
        self._by_event = index

    def get(self, fqid: str) -> FunctionDef | None:
        return self._functions.get(fqid)

    def all(self) -> list[FunctionDef]:
        return sorted(self._functions.values(), key=lambda f: f.fqid)

    def match(self, event: dict[str, Any]) -> list[FunctionDef]:
        """The functions ``event`` starts: name equal, and the trigger's ``if`` true; a cron
        tick starts exactly the function it was armed for."""
        if event.get("name") == TIMER_EVENT:
            data = event.get("data") or {}
            fn = self._functions.get(str(data.get("function")))
            if fn is not None and any(t["cron"] == data.get("cron") for t in fn.crons):
                return [fn]
            return []
        out: list[FunctionDef] = []
        for fn in self._by_event.get(event.get("name", ""), ()):
            for trig in fn.triggers:
                if trig.get("event") == event["name"] and matches(trig["if"], {"event": event}):
                    out.append(fn)
                    break
        return out


def describe_trigger(trigger: dict[str, Any]) -> str:
    """A trigger as a person reads it: ``shop/order.created if event.data.total > 100``, ``cron 0 9 * * 1``."""
    if "cron" in trigger:
        return f"cron {trigger['cron']}" + (f" ({trigger['tz']})" if trigger.get("tz") else "")
    return str(trigger["event"]) + (f" if {trigger['if']}" if trigger.get("if") else "")
