"""A Docker guest runs with the defaults of DESIGN §5, as the guest itself sees them."""

from __future__ import annotations

import json
import os

import pytest

from sandboxes._docker_oneshot import container_config
from sandboxes.base import Limits, MiB, SandboxError, Target
from sandboxes.docker import DockerSandbox
from tests.sandboxes import docker_fixtures as fx

# Fixtures shared with the other Docker test modules (see docker_fixtures.py).
docker_engine, docker_sandbox, probe_image = fx.docker_engine, fx.docker_sandbox, fx.probe_image

pytestmark = pytest.mark.docker


async def test_the_guest_has_no_network_no_root_no_caps_and_a_read_only_root(
    docker_sandbox: DockerSandbox, probe_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_TEST_HOST_SECRET", "must-not-leak")
    target = Target("image", probe_image, env={"GREETING": "hi"})
    result = await docker_sandbox.run(target, b"report", Limits(timeout_s=30, tmpfs_mb=4))
    assert result.ok, (result.error, result.stderr)
    seen = json.loads(result.stdout)

    assert (seen["uid"], seen["gid"]) == (65534, 65534)
    assert seen["interfaces"] == ["lo"]
    assert seen["root_writable"] is False
    assert seen["tmp_writable"] is True
    assert {"noexec", "nosuid", "size=4096k"} <= set(seen["tmp_opts"].split(","))
    assert int(seen["cap_eff"], 16) == 0 and int(seen["cap_bnd"], 16) == 0
    assert seen["no_new_privs"] == "1"
    assert seen["seccomp"] == "2"  # filter mode: Docker's default profile is on
    assert seen["env"]["GREETING"] == "hi"
    assert "SLUICE_TEST_HOST_SECRET" not in seen["env"]


def test_the_container_config_caps_memory_without_swap_cpus_and_pids() -> None:
    limits = Limits(memory_mb=64, cpus=0.5, pids=32, tmpfs_mb=8)
    config = container_config("img", {}, limits, runtime="runc", labels={"sluice.sandbox": "x"})
    host = config["HostConfig"]
    assert host["Memory"] == host["MemorySwap"] == 64 * MiB
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 32
    assert host["NetworkMode"] == "none" and config["NetworkDisabled"] is True
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]  # default seccomp: never overridden
    assert host["Binds"] == [] and host["Mounts"] == []
    assert host["LogConfig"]["Type"] == "none"
    assert config["User"] == "65534:65534"
    assert config["Labels"] == {"sluice": "1", "sluice.sandbox": "x"}


@pytest.mark.parametrize("env", [{"": "x"}, {"A=B": "x"}, {"A": "nul\0"}])
def test_a_bad_environment_is_refused_by_name(env: dict[str, str]) -> None:
    with pytest.raises(SandboxError, match="environment variable"):
        container_config("img", env, Limits(), runtime="runc", labels={})


def test_the_host_environment_is_never_copied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_TEST_HOST_SECRET", "x")
    config = container_config("img", {"A": "1"}, Limits(), runtime="runc", labels={})
    assert config["Env"] == ["A=1"]
    assert "SLUICE_TEST_HOST_SECRET" in os.environ
