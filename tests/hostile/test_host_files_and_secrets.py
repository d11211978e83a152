"""Host files and secrets: a file the test writes on the host, the test process's own
environment (``SLUICE_TEST_SECRET``), through ``/proc`` too; and (WASM) a module opening
files through every descriptor it might have, or listing its environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandboxes.base import Result, Target
from tests.conformance.sandbox import call
from tests.hostile import fixtures as fx

peek_app = fx.app_fixture("peek", '''
def read(path):
    with open(path, "rb") as f:
        return f.read()


def find_in_environments(name):
    found = [pid for pid in os.listdir("/proc") if pid.isdigit() and name.encode() in read(f"/proc/{pid}/environ")]
    if found:
        return found
    raise KeyError(f"{name} in no process's environment")


def must_hold(value, name):
    if name.encode() in value:
        return "found"
    raise KeyError(f"{name} not in it")


@app.function(id="peek-host")
def peek_host(ctx):
    path, name = ctx.event.data["path"], ctx.event.data["env"]
    return ctx.step.run("peek", lambda: probe({
        "host_file": lambda: read(path),
        "host_file_via_proc_1_root": lambda: read("/proc/1/root" + path),
        "host_dir_listing": lambda: os.listdir(os.path.dirname(path)),
        "env_var": lambda: os.environ[name],
        "proc_self_environ": lambda: must_hold(read("/proc/self/environ"), name),
        "every_process_environ": lambda: find_in_environments(name),
        "host_root_listing": lambda: must_hold(" ".join(os.listdir("/proc/1/root/")).encode(), "pytest-of-"),
    }))
''')

_P1 = 'import "wasi_snapshot_preview1"'
#: Exits 1 if it has any environment variable, 0 if it opened a file, else 13: every
#: ``fd_prestat_get`` and ``path_open`` of ``etc/passwd`` and ``.`` on fds 0-31 refused.
OPEN_FILES = f"""(module
  ({_P1} "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))
  ({_P1} "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
  ({_P1} "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  ({_P1} "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "etc/passwd")
  (data (i32.const 120) ".")
  (func (export "_start") (local $fd i32)
    (drop (call $env_sizes (i32.const 0) (i32.const 4)))
    (if (i32.load (i32.const 0)) (then (call $proc_exit (i32.const 1))))
    (loop $next
      (if (i32.eqz (call $prestat (local.get $fd) (i32.const 200))) (then (call $proc_exit (i32.const 0))))
      (if (i32.eqz (call $open (local.get $fd) (i32.const 1) (i32.const 100) (i32.const 10) (i32.const 0)
                              (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 300)))  ;; fd_read rights
        (then (call $proc_exit (i32.const 0))))
      (if (i32.eqz (call $open (local.get $fd) (i32.const 1) (i32.const 120) (i32.const 1) (i32.const 0)
                              (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 300)))  ;; fd_read rights
        (then (call $proc_exit (i32.const 0))))
      (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $fd) (i32.const 32))))
    (call $proc_exit (i32.const 13))))
"""


@pytest.mark.parametrize("guest", fx.PYTHON_KINDS, indirect=True)
async def test_a_guest_reads_no_host_file_and_no_host_secret(
    guest: fx.Guest, peek_app: Target, tmp_path: Path
) -> None:
    secret_file = tmp_path / "host-secret.txt"
    secret_file.write_text(guest.secret)  # attack() also checks the secret never shows in its output
    request = call("peek-host", {"path": str(secret_file), "env": fx.SECRET_ENV})
    fx.refused(guest, await fx.attack(guest, peek_app, request))


@pytest.mark.parametrize("guest", fx.MODULE_KINDS, indirect=True)
async def test_a_module_opens_no_file_and_sees_no_environment(guest: fx.Guest, tmp_path: Path) -> None:
    result = await fx.attack(guest, fx.module_target(tmp_path, "open-files", OPEN_FILES), b"")
    assert isinstance(result, Result)
    assert guest.note(fx.failure(result)) == "exited with code 13"
