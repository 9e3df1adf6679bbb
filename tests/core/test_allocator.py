"""configure_allocator: glibc keeps freed tensors' memory for reuse, so a repeated step stops faulting pages in."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from attnkit.core import cli, runtime
from attnkit.core.errors import ConfigError
from attnkit.core.runtime import MALLOC_ENV, configure_allocator

glibc_only = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="mallopt is glibc's (Linux); elsewhere configure_allocator changes nothing")

# Allocates, fills and frees a 64 MiB tensor (above glibc's largest automatic mmap threshold, 32 MiB) and an
# activation-sized mix of smaller ones ten times; prints the minor page faults of the last five rounds.
CHILD = r"""
import json, resource, sys
import torch
from attnkit.core.runtime import configure_allocator
changed = configure_allocator(sys.argv[1])
def round_():
    big = torch.ones(16 * 2**20)
    small = [torch.ones(n) for n in (2**15, 2**18, 2**21, 2**22)]
    return float(big[-1] + sum(t[-1] for t in small))
faults = []
for i in range(10):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    round_()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"changed": changed, "late_faults": sum(faults[5:])}))
"""


def _child(mode: str, **env: str) -> dict[str, object]:
    environ = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "LD_PRELOAD", MALLOC_ENV)}
    environ.update(env, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, timeout=120,
                          env=environ, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@glibc_only
def test_reuse_stops_the_page_faults_of_a_repeated_allocation() -> None:
    pages = (16 * 2**20 * 4) // os.sysconf("SC_PAGE_SIZE")  # the 64 MiB tensor's pages, faulted in per round
    system = _child("system")
    reuse = _child("reuse")
    assert system["changed"] is False and reuse["changed"] is True
    assert system["late_faults"] >= 4 * pages, system  # glibc maps the big tensor afresh every round
    # rounds 6-10 reuse the heap: no faults, or one heap extension when a free left a hole (seen: 0 or 4,096)
    assert reuse["late_faults"] < pages, reuse


@glibc_only
def test_user_malloc_settings_are_left_alone() -> None:
    assert _child("reuse", GLIBC_TUNABLES="glibc.malloc.trim_threshold=1000000")["changed"] is False
    assert _child("reuse", MALLOC_MMAP_THRESHOLD_="131072")["changed"] is False


def test_system_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "_glibc", lambda: pytest.fail("system must not touch the allocator"))
    assert configure_allocator("system") is False
    monkeypatch.setenv(MALLOC_ENV, "system")
    assert configure_allocator() is False


def test_non_glibc_platforms_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MALLOC_ENV, raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    assert configure_allocator() is False


@pytest.mark.parametrize("bad", ["on", "jemalloc", "Reuse"])
def test_bad_values_name_the_setting_and_the_choices(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv(MALLOC_ENV, bad)
    with pytest.raises(ConfigError, match=f"{MALLOC_ENV}={bad!r}.*'reuse'.*'system'"):
        configure_allocator()
    with pytest.raises(ConfigError, match=r"mode="):
        configure_allocator(bad)


def test_the_command_configures_the_allocator_before_the_run(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(MALLOC_ENV, "bogus")
    monkeypatch.setattr(cli, "discover", lambda full=False: pytest.fail("the allocator is set before any import"))
    assert cli.main(["fit", "-c", "demo"]) == 1
    assert f"{MALLOC_ENV}='bogus'" in capsys.readouterr().err
