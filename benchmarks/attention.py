"""Benchmark attnkit attention against naive PyTorch, torch.nn.MultiheadAttention and direct SDPA.

Each (group, L) runs in its own subprocess (FlexAttention compiles once per shape there and is reused by
``flex`` and ``auto``, forward and backward); inside it every (implementation, mode) is measured in turn:

* time: after one warm-up call (which also compiles FlexAttention), the minimum over ``reps`` calls;
* peak memory: Linux ``VmHWM`` (peak resident set) is reset through ``/proc/self/clear_refs`` after the
  warm-up, one more call runs, and we report ``VmHWM - VmRSS(before the call)`` -- the extra resident
  memory one call needs, including everything torch allocates on CPU (``tracemalloc`` would not see it).
  Page granularity and malloc reuse make values below ~1 MB meaningless.

Cases (float32, D = 64 per head, B = 1, H = 4, one thread by default):

* dense: ``naive`` (matmul-softmax-matmul), ``sdpa`` (F.scaled_dot_product_attention called directly),
  ``auto`` (``attnkit.core.attention(..., backend="auto")``);
* module: ``torch-mha`` (nn.MultiheadAttention, batch_first) vs ``attnkit-mha`` (MultiHeadAttention),
  embed 256 = 4 heads x 64, projections included;
* sparse (causal, window 128): ``sdpa-dense-mask`` (SDPA with a materialised bool mask), ``flex``
  (attnkit backend="flex"), ``auto``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/attention.py --out /tmp/attn.json      # full run, ~30-60 min
    python benchmarks/attention.py --lengths 128 512 --groups dense             # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from typing import Any

B, H, D = 1, 4, 64
WINDOW = 128
GROUPS = {
    "dense": ["naive", "sdpa", "auto"],
    "module": ["torch-mha", "attnkit-mha"],
    "causal": ["sdpa-dense-mask", "flex", "auto"],
    "window": ["sdpa-dense-mask", "flex", "auto"],
    "overhead": ["sdpa", "auto"],  # per-call dispatch cost of auto: tiny L, many rounds
}
OVERHEAD_L, OVERHEAD_ROUNDS = 16, 3000


def _status() -> dict[str, int]:
    text = open("/proc/self/status").read()
    return {k: int(re.search(k + r":\s+(\d+)", text).group(1)) * 1024 for k in ("VmRSS", "VmHWM")}  # type: ignore[union-attr]


def _reps(length: int) -> int:
    return {128: 50, 512: 20, 2048: 5}.get(length, 3)


def worker(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Run every implementation and mode of ``spec["group"]`` at ``spec["length"]``.

    Each case is warmed up (compiling where needed) and its peak memory measured; then the cases are timed
    in interleaved rounds (one call of each per round) so that load from other processes hits all of
    them alike, and each reports its minimum over the rounds.
    """
    out: list[dict[str, Any]] = []
    ready: list[tuple[dict[str, Any], Any]] = []
    for impl in GROUPS[spec["group"]]:
        for mode in spec["modes"]:
            try:
                ready.append(prepare({**spec, "impl": impl, "mode": mode}))
            except Exception as e:  # report and go on (e.g. out of memory)
                out.append({**spec, "impl": impl, "mode": mode, "error": f"{type(e).__name__}: {e}"[:300]})
    times: list[list[float]] = [[] for _ in ready]
    rounds = OVERHEAD_ROUNDS if spec["group"] == "overhead" else _reps(spec["length"])
    for _ in range(rounds):
        for i, (_, step) in enumerate(ready):
            t0 = time.perf_counter()
            step()
            times[i].append(time.perf_counter() - t0)
    for (rec, _), ts in zip(ready, times, strict=True):
        out.append({**rec, "time_s": min(ts), "median_s": sorted(ts)[len(ts) // 2], "rounds": len(ts)})
    return out


def prepare(spec: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Build one case, warm it up, measure its peak memory; return its record and its step function."""
    import gc

    import torch
    import torch.nn.functional as F
    from torch import nn

    from attnkit.core import CausalMask, MultiHeadAttention, SlidingWindowMask, attention, record_backends
    from attnkit.core.attention import flex

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    gc.collect()
    group, impl, length, mode = spec["group"], spec["impl"], spec["length"], spec["mode"]
    spec = {k: v for k, v in spec.items() if k != "modes"}
    grad = mode == "fwd+bwd"
    backends: list[str] = []
    modules: list[nn.Module] = []

    if group == "module":
        e = H * D
        x = torch.randn(B, length, e, requires_grad=grad)
        if impl == "torch-mha":
            m: nn.Module = nn.MultiheadAttention(e, H, batch_first=True)
            modules.append(m)

            def call() -> torch.Tensor:
                return m(x, x, x, need_weights=False)[0]
        else:
            m = MultiHeadAttention(e, H)
            modules.append(m)

            def call() -> torch.Tensor:
                return m(x)[0]
        inputs = [x]
    else:
        q, k, v = (torch.randn(B, H, length, D, requires_grad=grad) for _ in range(3))
        inputs = [q, k, v]
        mask = None
        if group == "causal":
            mask = CausalMask()
        elif group == "window":
            mask = SlidingWindowMask(WINDOW)
        dense = None if mask is None else mask.dense(length, length)
        scale = D**-0.5

        if impl == "naive":
            def call() -> torch.Tensor:
                return torch.softmax(q @ k.transpose(-2, -1) * scale, dim=-1) @ v
        elif impl == "sdpa":
            def call() -> torch.Tensor:
                return F.scaled_dot_product_attention(q, k, v)
        elif impl == "sdpa-dense-mask":
            def call() -> torch.Tensor:
                return F.scaled_dot_product_attention(q, k, v, attn_mask=dense)
        else:
            backend = "flex" if impl == "flex" else "auto"

            def call() -> torch.Tensor:
                with record_backends() as used:
                    out = attention(q, k, v, mask, backend=backend)  # type: ignore[arg-type]
                backends[:] = used
                assert isinstance(out, torch.Tensor)
                return out

    gout = None

    def step() -> None:
        nonlocal gout
        if grad:
            out = call()
            if gout is None:
                gout = torch.randn_like(out)
            out.backward(gout)
            for t in inputs:
                t.grad = None
            for mod in modules:
                mod.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                call()

    n_compiled = len(flex.compile_log())
    t0 = time.perf_counter()
    step()  # warm-up (and FlexAttention compile)
    first = time.perf_counter() - t0
    compiled = flex.compile_log()[n_compiled:]
    gc.collect()
    before = _status()["VmRSS"]
    open("/proc/self/clear_refs", "w").write("5")
    step()
    peak = max(0, _status()["VmHWM"] - before)
    rec = {**spec, "first_s": first, "peak_bytes": peak, "backends": backends,
           "compile_s": sum(c[1] for c in compiled)}
    return rec, step


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return (f"{cpu}, {os.cpu_count()} logical cores visible, Linux {platform.release()}, Python "
            f"{platform.python_version()}, torch {torch.__version__}")


def report(data: dict[str, Any]) -> str:
    """Markdown tables (times in ms, memory in MiB, ratios) and the targets, from a results JSON."""
    res = {(r["group"], r["impl"], r["length"], r["mode"]): r for r in data["results"] if "error" not in r}
    lengths = sorted({k[2] for k in res if k[0] != "overhead"})
    errors = [r for r in data["results"] if "error" in r]

    def t(g: str, i: str, n: int, m: str) -> float | None:
        r = res.get((g, i, n, m))
        return None if r is None else r["time_s"] * 1e3

    def mem(g: str, i: str, n: int, m: str) -> str:
        r = res.get((g, i, n, m))
        return "-" if r is None else f"{r['peak_bytes'] / 2**20:.0f}"

    def fmt(x: float | None) -> str:
        return "-" if x is None else (f"{x:.3f}" if x < 1 else f"{x:.1f}")

    def ratio(a: float | None, b: float | None) -> str:
        return "-" if a is None or b is None else f"{a / b:.2f}x"

    lines = [f"Machine: {data['machine']}; {data['threads']} thread(s); float32, B=1, H=4, D=64.", ""]
    for mode in ("fwd", "fwd+bwd"):
        lines += [f"**Dense, {mode}** (time ms; peak extra MiB)", "",
                  "| L | naive | sdpa | auto | naive/auto | auto/sdpa | mem naive | mem sdpa | mem auto |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for n in lengths:
            a, s_, nv = t("dense", "auto", n, mode), t("dense", "sdpa", n, mode), t("dense", "naive", n, mode)
            lines.append(f"| {n} | {fmt(nv)} | {fmt(s_)} | {fmt(a)} | {ratio(nv, a)} | {ratio(a, s_)} | "
                         f"{mem('dense', 'naive', n, mode)} | {mem('dense', 'sdpa', n, mode)} | "
                         f"{mem('dense', 'auto', n, mode)} |")
        lines.append("")
    lines += ["**Module** (embed 256, 4 heads, projections included; time ms)", "",
              "| L | mode | nn.MultiheadAttention | attnkit MultiHeadAttention | torch/attnkit |",
              "|---|---|---|---|---|"]
    for n in lengths:
        for mode in ("fwd", "fwd+bwd"):
            a, b = t("module", "torch-mha", n, mode), t("module", "attnkit-mha", n, mode)
            lines.append(f"| {n} | {mode} | {fmt(a)} | {fmt(b)} | {ratio(a, b)} |")
    lines.append("")
    for g, title in (("causal", "Causal"), ("window", f"Sliding window {WINDOW}")):
        lines += [f"**{title} mask** (time ms; dense = SDPA with a materialised bool mask)", "",
                  "| L | mode | dense | flex | auto (ran) | dense/flex | mem dense | mem flex | flex compile s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for n in lengths:
            for mode in ("fwd", "fwd+bwd"):
                d, fl, au = t(g, "sdpa-dense-mask", n, mode), t(g, "flex", n, mode), t(g, "auto", n, mode)
                ran = res.get((g, "auto", n, mode), {}).get("backends", [])
                comp = res.get((g, "flex", n, mode), {}).get("compile_s")
                lines.append(f"| {n} | {mode} | {fmt(d)} | {fmt(fl)} | {fmt(au)} ({','.join(ran) or '-'}) | "
                             f"{ratio(d, fl)} | {mem(g, 'sdpa-dense-mask', n, mode)} | {mem(g, 'flex', n, mode)} | "
                             f"{'-' if not comp else f'{comp:.0f}'} |")
        lines.append("")
    for mode in ("fwd", "fwd+bwd"):
        a, b = t("overhead", "auto", OVERHEAD_L, mode), t("overhead", "sdpa", OVERHEAD_L, mode)
        if a is not None and b is not None:
            lines.append(f"Dispatch overhead of auto ({mode}, L={OVERHEAD_L}, min of {OVERHEAD_ROUNDS} interleaved "
                         f"rounds): sdpa {b * 1e3:.1f} us, auto {a * 1e3:.1f} us, difference {(a - b) * 1e3:.1f} us.")
    lines.append("")
    if errors:
        lines += ["Cases that failed: " + "; ".join(f"{e['group']}/{e.get('impl', '*')}/{e['length']}/"
                                                   f"{e.get('mode', '*')}: {e['error']}" for e in errors), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[128, 512, 2048, 8192])
    p.add_argument("--groups", nargs="+", default=[g for g in GROUPS if g != "overhead"], choices=list(GROUPS),
                   help="'overhead' times sdpa vs auto at L=16 over 3000 rounds (the dispatch cost of auto)")
    p.add_argument("--modes", nargs="+", default=["fwd", "fwd+bwd"], choices=["fwd", "fwd+bwd"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="write all results as JSON here (appended as they finish)")
    p.add_argument("--report", default=None, help="print docs/benchmarks.md tables for a results JSON and exit")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.report:
        print(report(json.load(open(args.report))))
        return
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))))
        return
    results: list[dict[str, Any]] = []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    info = machine()
    print(f"# machine: {info}; threads={args.threads}", flush=True)
    for group in args.groups:
        for length in [OVERHEAD_L] if group == "overhead" else args.lengths:
            spec = {"group": group, "length": length, "modes": args.modes, "threads": args.threads}
            proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], env=env,
                                  capture_output=True, text=True)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not line:
                got = [{**spec, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}]
            else:
                got = json.loads(line[0][7:])
            for res in got:
                results.append(res)
                print(json.dumps(res), flush=True)
            if args.out:
                with open(args.out, "w") as f:
                    json.dump({"machine": info, "threads": args.threads, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
