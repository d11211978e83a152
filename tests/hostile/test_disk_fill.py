"""Disk: filling ``/tmp``, writing to the root filesystem and the app or SDK code, filling
``/dev/shm``, and symlink and hard-link tricks from ``/tmp``."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandboxes.base import Target
from tests.conformance.sandbox import call
from tests.hostile import fixtures as fx

disk_app = fx.app_fixture("disk", '''
def fill(path):
    written = 0
    with open(path, "wb") as f:
        while written < 1 << 30:  # ENOSPC long before this
            f.write(b"\\x01" * (1 << 20))
            f.flush()
            written += 1 << 20
    return written


@app.function(id="fill-tmp")
def fill_tmp(ctx):
    return ctx.step.run("fill", lambda: fill("/tmp/fill"))


@app.function(id="fill-shm")
def fill_shm(ctx):
    # More than the guest's tmpfs_mb: /dev/shm must not be a second, larger scratch disk.
    def over_tmpfs():
        written = 0
        with open("/dev/shm/fill", "wb") as f:
            while written <= ctx.event.data["tmpfs_mb"] << 20:
                f.write(b"\\x01" * (1 << 20))
                f.flush()
                written += 1 << 20
        return written

    return ctx.step.run("fill", lambda: probe({"dev_shm": over_tmpfs}))


def append(path):
    with open(path, "a") as f:
        return f.write("intruder::0:0::/:/bin/sh\\n")


@app.function(id="write-root")
def write_root(ctx):
    return ctx.step.run("write", lambda: probe({
        "new_file_in_root": lambda: open("/intruder", "w").write("x"),
        "etc_passwd": lambda: append("/etc/passwd"),
        "app_code": lambda: append("/app/app.py"),
        "sdk_code": lambda: append(os.path.join(os.path.dirname(sluice.__file__), "shim.py")),
        "usr_bin": lambda: open("/usr/bin/intruder", "w").write("x"),
    }))


@app.function(id="link-tricks")
def link_tricks(ctx):
    def through_symlink(target, mode):
        link = f"/tmp/link-{len(os.listdir('/tmp'))}"
        os.symlink(target, link)
        with open(link, mode) as f:
            return f.read() if "r" in mode else f.write("x")

    return ctx.step.run("links", lambda: probe({
        "read_shadow_via_symlink": lambda: through_symlink("/etc/shadow", "r"),
        "write_passwd_via_symlink": lambda: through_symlink("/etc/passwd", "a"),
        "write_app_via_symlink": lambda: through_symlink("/app/app.py", "a"),
        "read_host_file_via_proc_root": lambda: through_symlink("/proc/1/root" + ctx.event.data["host_file"], "r"),
        "hard_link_passwd": lambda: os.link("/etc/passwd", "/tmp/passwd"),
        "hard_link_shadow": lambda: os.link("/etc/shadow", "/tmp/shadow"),
        "exec_from_tmp": lambda: (open("/tmp/x.sh", "w").write("#!/bin/sh\\nid\\n"), os.chmod("/tmp/x.sh", 0o755),
                                  os.execv("/tmp/x.sh", ["x.sh"])),
    }))
''')


@pytest.mark.parametrize("guest", fx.PYTHON_KINDS, indirect=True)
async def test_filling_tmp_fails_at_its_size_and_leaves_nothing_for_the_next_call(
    guest: fx.Guest, disk_app: Target
) -> None:
    outcome = guest.note(fx.failure(await fx.attack(guest, disk_app, call("fill-tmp"))))
    # No space (a container's /tmp is a small tmpfs); no /tmp at all under WASM.
    assert outcome.startswith(("OSError: [Errno 28] No space left", "PermissionError", "FileNotFoundError")), outcome
    await fx.assert_no_residue(guest, disk_app)


@pytest.mark.parametrize("guest", fx.PYTHON_KINDS, indirect=True)
async def test_writing_to_the_root_filesystem_or_the_code_is_refused(guest: fx.Guest, disk_app: Target) -> None:
    refused = fx.refused(guest, await fx.attack(guest, disk_app, call("write-root")))
    assert all(e.startswith(("OSError: [Errno 30]", "PermissionError", "FileNotFoundError")) for e in refused.values())


@pytest.mark.parametrize("guest", fx.PYTHON_KINDS, indirect=True)
async def test_dev_shm_is_not_a_second_scratch_disk_past_tmpfs_mb(guest: fx.Guest, disk_app: Target) -> None:
    request = call("fill-shm", {"tmpfs_mb": fx.ATTACK.tmpfs_mb})
    fx.refused(guest, await fx.attack(guest, disk_app, request))


@pytest.mark.parametrize("guest", fx.PYTHON_KINDS, indirect=True)
async def test_symlink_and_hard_link_tricks_in_tmp_reach_nothing(
    guest: fx.Guest, disk_app: Target, tmp_path: Path
) -> None:
    host_file = tmp_path / "host-secret.txt"
    host_file.write_text(guest.secret)
    fx.refused(guest, await fx.attack(guest, disk_app, call("link-tricks", {"host_file": str(host_file)})))
