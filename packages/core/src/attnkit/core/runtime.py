"""Process-wide runtime settings of the ``attnkit`` command: CPU threads, C allocator, bf16 check.

Why a default: torch starts one intra-op thread per core. On a machine with two CPUs that other work
shares, the demo (``attnkit fit -c demo``) ran 4-8x slower per step with 2 threads than with 1, because
the threads wait for each other whenever a core is taken (figures in README.md, "Threads"). Small models
gain little from more threads in any case.
"""

from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING

from attnkit.core.errors import ConfigError

if TYPE_CHECKING:
    import ctypes

__all__ = [
    "MALLOC_ENV",
    "THREADS_ENV",
    "available_cpus",
    "configure_allocator",
    "configure_threads",
    "cpu_has_native_bf16",
    "default_threads",
    "slow_precision_warning",
]

#: Environment variable read when no explicit thread count is given.
THREADS_ENV = "ATTNKIT_NUM_THREADS"

#: Environment variable choosing the C allocator's behaviour: ``reuse`` (the ``attnkit`` command's default) or
#: ``system`` (glibc's own settings).
MALLOC_ENV = "ATTNKIT_MALLOC"

# mallopt(3) parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: requests up to this size come from the heap and are reused after ``free``; larger ones are mapped (and
#: unmapped on ``free``) as glibc does for every large request by default
REUSE_MMAP_THRESHOLD = 1 << 30
#: free memory at the top of the heap is returned to the OS only above this size (mallopt's ``int`` maximum)
REUSE_TRIM_THRESHOLD = (1 << 31) - 1


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int | None:
    """The thread count used when nothing is configured: 1 with 2 or fewer CPUs, else ``None`` (torch's own)."""
    return 1 if available_cpus() <= 2 else None


def _parse(value: str, source: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(
            f"{source}={value!r} is not a whole number; set it to a thread count such as 1 or 4"
        ) from None
    if n < 1:
        raise ConfigError(f"{source}={n} must be >= 1; set it to a thread count such as 1 or 4")
    return n


def configure_threads(n: int | str | None = None) -> int:
    """Set the number of CPU threads torch uses in this process and return it.

    Precedence: ``n`` (the command's ``--threads``), then ``$ATTNKIT_NUM_THREADS``; then, when
    ``$OMP_NUM_THREADS`` is set, torch's setting is left as it is (torch read it at import); otherwise
    :func:`default_threads`.

    Args:
        n: threads for intra-op parallelism (``torch.set_num_threads``); ``None``: see above.

    Returns:
        The number of threads torch now uses.

    Raises:
        ConfigError: ``n`` or ``$ATTNKIT_NUM_THREADS`` is not a whole number >= 1.
    """
    import torch

    if n is not None:
        n = _parse(str(n), "--threads")
    elif os.environ.get(THREADS_ENV):
        n = _parse(os.environ[THREADS_ENV], THREADS_ENV)
    elif os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    else:
        n = default_threads()
        if n is None:
            return torch.get_num_threads()
    torch.set_num_threads(n)
    return torch.get_num_threads()


def _glibc() -> ctypes.CDLL | None:
    """glibc, loaded by its soname (``ctypes.util.find_library`` would run ``ldconfig -p`` at every command)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def configure_allocator(mode: str | None = None) -> bool:
    """Make glibc's ``malloc`` keep and reuse freed memory in this process; returns whether it was changed.

    PyTorch allocates CPU tensors with the C library's allocator. glibc serves a request above its *mmap
    threshold* (128 KiB at start, raised at run time up to 32 MiB) with a fresh mapping that ``free`` hands
    back to the OS, and returns free memory at the top of its heap once it exceeds the *trim threshold*. A
    training step frees and re-allocates the same activations and gradients every step, so the OS maps and
    zero-fills those pages again each time: on an AVX2 AMD EPYC, 45,000-190,000 minor page faults per
    training step of TransDAE (4x256x256, 1 thread) and 83,000-104,000 per step of the smp U-Net, up to 2.1 s of
    kernel time in one 5.5 s step; with ``"reuse"`` the median training step was 2-34% shorter for the vision
    models (docs/benchmarks.md, issue #16). ``"reuse"`` raises both thresholds
    (``mallopt(M_MMAP_THRESHOLD, 1 GiB)``, ``mallopt(M_TRIM_THRESHOLD, 2 GiB - 1)``): requests up to 1 GiB
    come from the heap and freed memory is reused, not returned, so from the third step on a step takes
    (almost) no page faults. The cost: the process keeps its peak heap until it exits, which a training or
    inference loop reaches again at every step anyway. Results are unchanged (the allocator hands out the
    same 64-byte-aligned memory, only from a different place).

    Precedence: ``mode``, then ``$ATTNKIT_MALLOC``, then ``"reuse"``. Nothing is changed with ``"system"``,
    off Linux/glibc (macOS, Windows, musl), or when the user set glibc's own malloc tuning
    (``GLIBC_TUNABLES`` with ``glibc.malloc``, ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``) or
    preloads another allocator (``LD_PRELOAD`` naming jemalloc or tcmalloc).

    Args:
        mode: ``"reuse"`` or ``"system"``; ``None``: see above.

    Raises:
        ConfigError: ``mode`` or ``$ATTNKIT_MALLOC`` is neither ``reuse`` nor ``system``.
    """
    source = "mode" if mode is not None else MALLOC_ENV
    value = mode if mode is not None else (os.environ.get(MALLOC_ENV) or "reuse")
    if value not in ("reuse", "system"):
        raise ConfigError(f"{source}={value!r}: use 'reuse' (keep freed memory for the next step, the default) "
                          "or 'system' (glibc's own malloc settings)")
    if value == "system":
        return False
    env = os.environ
    if ("glibc.malloc" in env.get("GLIBC_TUNABLES", "") or "MALLOC_MMAP_THRESHOLD_" in env
            or "MALLOC_TRIM_THRESHOLD_" in env
            or any(name in env.get("LD_PRELOAD", "") for name in ("jemalloc", "tcmalloc"))):
        return False
    libc = _glibc()
    if libc is None:
        return False
    ok = libc.mallopt(_M_MMAP_THRESHOLD, REUSE_MMAP_THRESHOLD)  # both values fit mallopt's int
    ok &= libc.mallopt(_M_TRIM_THRESHOLD, REUSE_TRIM_THRESHOLD)
    return bool(ok)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX tiles), what makes bf16 fast on a CPU.

    Without them PyTorch converts every bf16 operand in software: the same model then runs many times
    slower in ``bf16-mixed`` than in float32 (SAITS's training step on an AVX2-only AMD EPYC: 17 s against
    1.0 s; on an AVX512-BF16 EPYC bf16-mixed was 2.8x *faster* than float32; docs/benchmarks.md).
    """
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def slow_precision_warning(precision: str, on_cpu: bool, fix: str = "--trainer.precision 32-true") -> str | None:
    """A warning for a precision that will run far slower than float32 on this machine, else ``None``.

    Args:
        precision: Lightning's precision setting (``"bf16-mixed"``, ``"bf16-true"``, ``"32-true"``...) or a
            dtype name (``"bfloat16"``).
        on_cpu: whether the run computes on the CPU.
        fix: how the caller's user asks for float32, named in the message.
    """
    if not on_cpu or not any(name in str(precision) for name in ("bf16", "bfloat16")) or cpu_has_native_bf16():
        return None
    return (f"precision {precision} on a CPU without bfloat16 instructions (no AVX512-BF16 or AMX): PyTorch emulates "
            "bf16 here, so every step runs many times slower than in float32 (17x for SAITS on an AVX2 CPU). Use "
            f"{fix} on this machine; bf16 pays off on CPUs with AVX512-BF16/AMX and on GPUs.")
