"""A stand-in guest for the Docker sandbox tests: stdin is a command, not protocol bytes.

Runs inside the container as the image's entrypoint (the sandbox does not care what the
bytes mean). Commands: echo, report, sleep, exit3, flood, flood-stderr, oom,
forkbomb, diskfill, close-and-hang.
"""

import json
import os
import sys
import time


def report():
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
    try:
        with open("/probe-write-test", "w") as f:
            f.write("x")
        root_writable = True
    except OSError:
        root_writable = False
    try:
        with open("/tmp/ok", "w") as f:
            f.write("x")
        tmp_writable = True
    except OSError:
        tmp_writable = False
    tmp_opts = ""
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if parts[1] == "/tmp":
                tmp_opts = parts[3]
    return {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "interfaces": sorted(os.listdir("/sys/class/net")),
        "root_writable": root_writable,
        "tmp_writable": tmp_writable,
        "tmp_opts": tmp_opts,
        "cap_eff": status.get("CapEff", "?").strip(),
        "cap_bnd": status.get("CapBnd", "?").strip(),
        "no_new_privs": status.get("NoNewPrivs", "?").strip(),
        "seccomp": status.get("Seccomp", "?").strip(),
        "env": dict(os.environ),
    }


def main():
    command = sys.stdin.buffer.read()
    cmd = command.split(b" ", 1)[0]
    if cmd == b"echo":
        sys.stderr.write(f"echoing {len(command)} bytes\n")
        sys.stdout.buffer.write(command)
    elif cmd == b"report":
        sys.stdout.write(json.dumps(report()))
    elif cmd == b"sleep":
        time.sleep(600)
    elif cmd == b"exit3":
        sys.stderr.write("bye\n")
        sys.exit(3)
    elif cmd == b"flood":
        block = b"x" * 65536
        while True:
            sys.stdout.buffer.write(block)
    elif cmd == b"flood-stderr":
        block = b"e" * 65536
        while True:
            sys.stderr.buffer.write(block)
    elif cmd == b"oom":
        hoard = []
        while True:
            hoard.append(bytearray(16 * 1024 * 1024))
    elif cmd == b"forkbomb":
        children = 0
        try:
            for _ in range(10_000):
                if os.fork() == 0:
                    time.sleep(600)
                    os._exit(0)
                children += 1
        except OSError as exc:
            sys.stdout.write(json.dumps({"children": children, "error": exc.strerror}))
    elif cmd == b"diskfill":
        written = 0
        block = b"d" * 65536
        try:
            with open("/tmp/fill", "wb") as f:
                for _ in range(100_000):
                    f.write(block)
                    f.flush()
                    written += len(block)
        except OSError as exc:
            sys.stdout.write(json.dumps({"written": written, "error": exc.strerror}))
    elif cmd == b"close-and-hang":
        sys.stdout.buffer.write(b"partial")
        sys.stdout.flush()
        os.close(1)
        os.close(2)
        time.sleep(600)
    else:
        sys.stderr.write(f"unknown command {command[:40]!r}\n")
        sys.exit(2)


main()
