"""The seccomp profile gVisor guests get (runc guests keep Docker's default).

Why not Docker's default under runsc: with ``--oci-seccomp`` (see
``scripts/docker-engine.sh``) runsc applies the container's profile inside the
sandbox, but the runsc here (release 2022-12-19) answers every refused call with
``EPERM``, ignoring a rule's ``errnoRet``. Docker's default refuses ``clone3`` with
``ENOSYS`` so that glibc falls back to ``clone``; turned into ``EPERM`` it makes every
thread start fail ("can't start new thread"). gVisor itself answers ``clone3`` with
``ENOSYS``, so letting it through loses nothing.

So under runsc the profile allows by default and refuses, with ``EPERM``, what Docker's
default refuses a container without ``CAP_SYS_ADMIN``: new namespaces (``unshare``,
``setns``, ``clone`` with a ``CLONE_NEW*`` flag), mounts and the new mount API,
``pivot_root``, the kernel keyring, modules, ``bpf``, ``perf_event_open``,
``userfaultfd``, clock and time setting, ``reboot``, swap, accounting, quotas,
``kexec``, NUMA policy calls, handle-based opens, ``process_vm_*``, ``kcmp``,
``syslog``, ``vm86`` and ``ioperm``/``iopl``. Raises nothing; :func:`profile_json` is
pure.
"""

from __future__ import annotations

import json

#: Calls refused outright (x86_64 names).
REFUSED = (
    "unshare", "setns", "mount", "umount", "umount2", "pivot_root", "chroot",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    "add_key", "request_key", "keyctl",
    "init_module", "finit_module", "delete_module", "create_module", "query_module", "get_kernel_syms",
    "bpf", "perf_event_open", "userfaultfd", "lookup_dcookie",
    "clock_adjtime", "clock_settime", "settimeofday", "stime", "adjtimex",
    "reboot", "swapon", "swapoff", "acct", "quotactl", "kexec_load", "kexec_file_load",
    "get_mempolicy", "set_mempolicy", "mbind", "move_pages",
    "name_to_handle_at", "open_by_handle_at", "process_vm_readv", "process_vm_writev", "kcmp",
    "syslog", "vm86", "vm86old", "ioperm", "iopl", "uselib", "ustat", "sysfs", "_sysctl", "nfsservctl",
)

#: ``clone`` flags that make a namespace; ``clone`` with any of them is refused.
CLONE_NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}

_EPERM = 1


def profile() -> dict[str, object]:
    """The OCI/Docker seccomp profile for runsc guests, as a dict."""
    syscalls: list[dict[str, object]] = [
        {"names": list(REFUSED), "action": "SCMP_ACT_ERRNO", "errnoRet": _EPERM},
    ]
    for flag in CLONE_NAMESPACE_FLAGS.values():
        syscalls.append({
            "names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": _EPERM,
            "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}],
        })
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": syscalls,
    }


def profile_json() -> str:
    """:func:`profile` as the JSON ``SecurityOpt: seccomp=<json>`` takes."""
    return json.dumps(profile(), separators=(",", ":"))
