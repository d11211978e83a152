"""Escape attempts: kernel knobs through ``/proc`` and ``/sys``, overwriting ``/proc/self/exe``,
ptrace, mount, new namespaces, the kernel keyring, becoming root (``setuid(0)``, a setuid
binary, ``chroot``), raw devices. Under WASM none of these calls exist."""

from __future__ import annotations

import pytest

from sandboxes.base import Target
from tests.conformance.sandbox import call
from tests.hostile import fixtures as fx

escape_app = fx.app_fixture("escape", '''
import subprocess
import time


def write(path, data=b"x"):
    with open(path, "wb") as f:
        return f.write(data)


def syscall(name, *args):
    """A raw system call by name (x86_64 numbers); OSError unless it returned >= 0."""
    import ctypes

    numbers = {"ptrace": 101, "mount": 165, "unshare": 272, "add_key": 248, "keyctl": 250,
               "init_module": 175, "bpf": 321, "perf_event_open": 298}
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    result = libc.syscall(numbers[name], *args)
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return result


def setuid_binary_euid():
    """Start setuid-root su (it waits for a password) and read its effective uid."""
    child = subprocess.Popen(["/usr/bin/su", "-c", "id"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(0.3)
        with open(f"/proc/{child.pid}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
    finally:
        child.kill()
        child.communicate()
    if uids[1] == "0":
        return f"su runs as root: {uids}"
    raise PermissionError(f"su keeps euid {uids[1]}")


@app.function(id="escape")
def escape(ctx):
    import ctypes as _ctypes_probe  # noqa: F401 - ModuleNotFoundError ends the probe where there is none

    return ctx.step.run("escape", lambda: probe({
        "core_pattern": lambda: write("/proc/sys/kernel/core_pattern", b"|/tmp/x"),
        "sysrq_trigger": lambda: write("/proc/sysrq-trigger", b"h"),
        "cgroup_release_agent": lambda: write("/sys/fs/cgroup/release_agent", b"/tmp/x"),
        "cgroup_procs": lambda: write("/sys/fs/cgroup/cgroup.procs", b"1"),
        "overwrite_proc_self_exe": lambda: write("/proc/self/exe"),
        "proc_1_mem": lambda: write("/proc/1/mem"),
        "ptrace_attach_pid_1": lambda: syscall("ptrace", 16, 1, 0, 0),
        "mount_tmpfs": lambda: syscall("mount", b"none", b"/tmp", b"tmpfs", 0, None),
        "unshare_user_namespace": lambda: syscall("unshare", 0x10000000),
        "unshare_mount_namespace": lambda: syscall("unshare", 0x00020000),
        "keyring_add_key": lambda: syscall("add_key", b"user", b"sluice", b"secret", 6, -2),
        "load_kernel_module": lambda: syscall("init_module", None, 0, b""),
        "bpf": lambda: syscall("bpf", 0, None, 0),
        "setuid_0": lambda: os.setuid(0),
        "setuid_binary": setuid_binary_euid,
        "chroot": lambda: os.chroot("/tmp"),
        "kmsg": lambda: open("/dev/kmsg", "rb").read(1),
        "raw_disk": lambda: open("/dev/sda", "rb").read(1),
    }))
''')


@pytest.mark.parametrize("guest", fx.PYTHON_KINDS, indirect=True)
async def test_escape_attempts_are_all_refused(guest: fx.Guest, escape_app: Target) -> None:
    result = await fx.attack(guest, escape_app, call("escape"))
    if guest.kind == "wasm-python":
        assert guest.note(fx.failure(result)) == "ModuleNotFoundError: No module named 'ctypes'"
        return
    fx.refused(guest, result)
