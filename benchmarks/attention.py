"""Benchmark attnkit attention against naive PyTorch, torch.nn.MultiheadAttention and direct SDPA.

Each (group, L) runs in its own subprocess (FlexAttention compiles once per shape there and is reused by
``flex`` and ``auto``, forward and backward); inside it every (implementation, mode) is measured in turn:

* time: after one warm-up call (which also compiles FlexAttention), every case of the (group, L) runs once
  per round, A, B, C, A, B, C, ... (paired interleaved rounds), so that load from other processes hits all
  of them alike. Tables show the median time per case, and each ratio is the **median over rounds of the
  per-round ratio** (A's time / B's time in the same round); the per-round times are kept in the JSON;
* peak memory: Linux ``VmHWM`` (peak resident set) is reset through ``/proc/self/clear_refs`` after the
  warm-up, one more call runs, and we report ``VmHWM - VmRSS(before the call)`` -- the extra resident
  memory one call needs, including everything torch allocates on CPU (``tracemalloc`` would not see it).
  Page granularity and malloc reuse make values below ~1 MB meaningless; glibc's dynamic mmap threshold
  can also keep freed blocks of the warm-up resident and hide part of the peak -- ``--exact-memory`` fixes
  the threshold so that the column grows as the allocations do.

Cases (float32, D = 64 per head, B = 1, H = 4, one thread by default):

* dense: ``naive`` (matmul-softmax-matmul), ``sdpa`` (F.scaled_dot_product_attention called directly),
  ``auto`` (``attnkit.core.attention(..., backend="auto")``);
* module: ``torch-mha`` (nn.MultiheadAttention, batch_first) vs ``attnkit-mha`` (MultiHeadAttention),
  embed 256 = 4 heads x 64, projections included;
* sparse (causal, window 128): ``sdpa-dense-mask`` (SDPA with a materialised bool mask), ``flex``
  (attnkit backend="flex"), ``local`` (attnkit backend="local", blocked sliding window; window group
  only), ``auto``.

The load average (``/proc/loadavg``) is printed and recorded before and after every (group, L) and the
whole run; the markdown tables are printed at the end and written to ``--table`` if given.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/attention.py --out /tmp/attn.json --table /tmp/attn.md  # full run
    python benchmarks/attention.py --lengths 128 512 --groups dense             # quick look
    python benchmarks/attention.py --groups window --lengths 8192 --impls sdpa-dense-mask local --rounds 7
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
    "window": ["sdpa-dense-mask", "flex", "local", "auto"],
    "overhead": ["sdpa", "auto"],  # per-call dispatch cost of auto: tiny L, many rounds
}
OVERHEAD_L, OVERHEAD_ROUNDS = 16, 3000


def _status() -> dict[str, int]:
    text = open("/proc/self/status").read()
    return {k: int(re.search(k + r":\s+(\d+)", text).group(1)) * 1024 for k in ("VmRSS", "VmHWM")}  # type: ignore[union-attr]


def _reps(length: int) -> int:
    return {128: 50, 512: 20, 2048: 7}.get(length, 5)


def loadavg() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    return os.getloadavg()


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median over rounds of ``a[r] / b[r]`` (both timed in the same interleaved round ``r``)."""
    ratios = sorted(x / y for x, y in zip(a, b, strict=True))
    mid = len(ratios) // 2
    return ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2


def worker(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Run every implementation and mode of ``spec["group"]`` at ``spec["length"]``.

    Each case is warmed up (compiling where needed) and its peak memory measured; then the cases are timed
    in interleaved rounds (one call of each per round) so that load from other processes hits all of
    them alike. Each record keeps every round's time (``times_s``), the minimum and the median.
    """
    out: list[dict[str, Any]] = []
    ready: list[tuple[dict[str, Any], Any]] = []
    impls = [i for i in GROUPS[spec["group"]] if not spec.get("impls") or i in spec["impls"]]
    spec = {k: v for k, v in spec.items() if k != "impls"}
    for impl in impls:
        for mode in spec["modes"]:
            try:
                ready.append(prepare({**spec, "impl": impl, "mode": mode}))
            except Exception as e:  # report and go on (e.g. out of memory)
                out.append({**spec, "impl": impl, "mode": mode, "error": f"{type(e).__name__}: {e}"[:300]})
    times: list[list[float]] = [[] for _ in ready]
    rounds = OVERHEAD_ROUNDS if spec["group"] == "overhead" else spec.get("rounds") or _reps(spec["length"])
    for _ in range(rounds):
        for i, (_, step) in enumerate(ready):
            t0 = time.perf_counter()
            step()
            times[i].append(time.perf_counter() - t0)
    for (rec, _), ts in zip(ready, times, strict=True):
        keep = {"times_s": ts} if spec["group"] != "overhead" else {}
        out.append({**rec, "time_s": min(ts), "median_s": sorted(ts)[len(ts) // 2], "rounds": len(ts), **keep})
    return out


def prepare(spec: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Build one case, warm it up, measure its peak memory; return its record and its step function."""
    import gc

    import torch
    import torch.nn.functional as F
    from torch import nn

    from attnkit.core import CausalMask, Mask, MultiHeadAttention, SlidingWindowMask, attention, record_backends
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
        mask: Mask | None = None
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
            backend = impl if impl in ("flex", "local") else "auto"

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
    """Markdown tables (median times in ms, memory in MiB, median paired ratios) from a results JSON.

    Groups or lengths that were not run are left out. Results written before per-round times were kept
    (no ``times_s``) fall back to the ratio of the recorded times.
    """
    res = {(r["group"], r["impl"], r["length"], r["mode"]): r for r in data["results"] if "error" not in r}
    errors = [r for r in data["results"] if "error" in r]
    ran = {k[0] for k in res}

    def lengths(group: str) -> list[int]:
        return sorted({k[2] for k in res if k[0] == group})

    def modes(group: str, n: int) -> list[str]:
        return [m for m in ("fwd", "fwd+bwd") if any(k[0] == group and k[2] == n and k[3] == m for k in res)]

    def t(g: str, i: str, n: int, m: str) -> float | None:
        r = res.get((g, i, n, m))
        return None if r is None else r.get("median_s", r["time_s"]) * 1e3

    def mem(g: str, i: str, n: int, m: str) -> str:
        r = res.get((g, i, n, m))
        return "-" if r is None else f"{r['peak_bytes'] / 2**20:.0f}"

    def fmt(x: float | None) -> str:
        return "-" if x is None else (f"{x:.3f}" if x < 1 else f"{x:.1f}")

    def ratio(g: str, a: str, b: str, n: int, m: str) -> str:
        ra, rb = res.get((g, a, n, m)), res.get((g, b, n, m))
        if ra is None or rb is None:
            return "-"
        if "times_s" in ra and "times_s" in rb:
            return f"{paired_ratio(ra['times_s'], rb['times_s']):.2f}x"
        return f"{ra['time_s'] / rb['time_s']:.2f}x"

    def rounds(g: str, n: int) -> str:
        got = sorted({r["rounds"] for k, r in res.items() if k[0] == g and k[2] == n})
        return "/".join(map(str, got)) or "-"

    def load(g: str, n: int) -> str:
        r = next((r for k, r in res.items() if k[0] == g and k[2] == n and "load_before" in r), None)
        return "-" if r is None else f"{r['load_before'][0]:.1f} / {r['load_after'][0]:.1f}"

    lines = [f"Machine: {data['machine']}; {data['threads']} thread(s); float32, B=1, H=4, D=64."]
    if "load_before" in data:
        lines.append(f"Load average (1/5/15 min) before the run: {' '.join(f'{x:.2f}' for x in data['load_before'])}"
                     + ("" if "load_after" not in data else
                        f"; after: {' '.join(f'{x:.2f}' for x in data['load_after'])}") + ".")
    lines += ["Times are medians over interleaved rounds; ratios are medians of per-round ratios; 'load' is the "
              "1-minute load average before / after that (group, L).", ""]
    for mode in ("fwd", "fwd+bwd"):
        if "dense" not in ran:
            break
        lines += [f"**Dense, {mode}** (time ms; peak extra MiB)", "",
                  "| L | naive | sdpa | auto | naive/auto | auto/sdpa | mem naive | mem sdpa | mem auto | rounds "
                  "| load |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for n in lengths("dense"):
            if mode not in modes("dense", n):
                continue
            a, s_, nv = t("dense", "auto", n, mode), t("dense", "sdpa", n, mode), t("dense", "naive", n, mode)
            lines.append(f"| {n} | {fmt(nv)} | {fmt(s_)} | {fmt(a)} | {ratio('dense', 'naive', 'auto', n, mode)} | "
                         f"{ratio('dense', 'auto', 'sdpa', n, mode)} | {mem('dense', 'naive', n, mode)} | "
                         f"{mem('dense', 'sdpa', n, mode)} | {mem('dense', 'auto', n, mode)} | "
                         f"{rounds('dense', n)} | {load('dense', n)} |")
        lines.append("")
    if "module" in ran:
        lines += ["**Module** (embed 256, 4 heads, projections included; time ms)", "",
                  "| L | mode | nn.MultiheadAttention | attnkit MultiHeadAttention | torch/attnkit | rounds | load |",
                  "|---|---|---|---|---|---|---|"]
        for n in lengths("module"):
            for mode in modes("module", n):
                a, b = t("module", "torch-mha", n, mode), t("module", "attnkit-mha", n, mode)
                lines.append(f"| {n} | {mode} | {fmt(a)} | {fmt(b)} | "
                             f"{ratio('module', 'torch-mha', 'attnkit-mha', n, mode)} | {rounds('module', n)} | "
                             f"{load('module', n)} |")
        lines.append("")
    for g, title in (("causal", "Causal"), ("window", f"Sliding window {WINDOW}")):
        if g not in ran:
            continue
        loc = g == "window"
        head = (["L", "mode", "dense", "flex"] + (["local"] if loc else []) + ["auto (ran)", "dense/flex"]
                + (["dense/local"] if loc else []) + ["mem dense", "mem flex"] + (["mem local"] if loc else [])
                + ["flex compile s", "rounds", "load"])
        lines += [f"**{title} mask** (time ms; dense = SDPA with a materialised bool mask)", "",
                  "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        for n in lengths(g):
            for mode in modes(g, n):
                d, fl, au = t(g, "sdpa-dense-mask", n, mode), t(g, "flex", n, mode), t(g, "auto", n, mode)
                used = res.get((g, "auto", n, mode), {}).get("backends", [])
                comp = res.get((g, "flex", n, mode), {}).get("compile_s")
                cells = [str(n), mode, fmt(d), fmt(fl)] + ([fmt(t(g, "local", n, mode))] if loc else [])
                cells += [f"{fmt(au)} ({','.join(used) or '-'})", ratio(g, "sdpa-dense-mask", "flex", n, mode)]
                cells += [ratio(g, "sdpa-dense-mask", "local", n, mode)] if loc else []
                cells += [mem(g, "sdpa-dense-mask", n, mode), mem(g, "flex", n, mode)]
                cells += [mem(g, "local", n, mode)] if loc else []
                cells += ["-" if not comp else f"{comp:.0f}", rounds(g, n), load(g, n)]
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    for mode in ("fwd", "fwd+bwd"):
        a, b = t("overhead", "auto", OVERHEAD_L, mode), t("overhead", "sdpa", OVERHEAD_L, mode)
        ra, rb = res.get(("overhead", "auto", OVERHEAD_L, mode)), res.get(("overhead", "sdpa", OVERHEAD_L, mode))
        if ra is not None and rb is not None:
            lo, hi = rb["time_s"] * 1e6, ra["time_s"] * 1e6
            lines.append(f"Dispatch overhead of auto ({mode}, L={OVERHEAD_L}, min of {ra['rounds']} interleaved "
                         f"rounds): sdpa {lo:.1f} us, auto {hi:.1f} us, difference {hi - lo:.1f} us.")
    lines.append("")
    if errors:
        lines += ["Cases that failed: " + "; ".join(f"{e['group']}/{e.get('impl', '*')}/{e['length']}/"
                                                   f"{e.get('mode', '*')}: {e['error']}" for e in errors), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[128, 512, 2048, 8192])
    p.add_argument("--groups", nargs="+", default=list(GROUPS), choices=list(GROUPS),
                   help="'overhead' times sdpa vs auto at L=16 over 3000 rounds (the dispatch cost of auto)")
    p.add_argument("--impls", nargs="+", default=None, choices=sorted({i for v in GROUPS.values() for i in v}),
                   help="run only these implementations (of the groups that have them)")
    p.add_argument("--modes", nargs="+", default=["fwd", "fwd+bwd"], choices=["fwd", "fwd+bwd"])
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaved rounds per (group, L); default 50 at L=128, 20 at 512, 7 at 2048, 5 above")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--exact-memory", action="store_true",
                   help="run workers with MALLOC_MMAP_THRESHOLD_=65536 so that freed large blocks go back to the OS "
                        "and the peak-memory column is not hidden by malloc reuse (may change times slightly)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per (group, L) subprocess")
    p.add_argument("--out", default=None, help="write all results as JSON here (rewritten as they finish)")
    p.add_argument("--table", default=None, help="write the markdown tables here at the end")
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
    if args.exact_memory:
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    info = machine()
    data: dict[str, Any] = {"machine": info, "threads": args.threads, "load_before": loadavg(), "results": results,
                            "exact_memory": args.exact_memory}
    print(f"# machine: {info}; threads={args.threads}; load average {data['load_before']}", flush=True)
    t_start = time.perf_counter()
    for group in args.groups:
        for length in [OVERHEAD_L] if group == "overhead" else args.lengths:
            spec = {"group": group, "length": length, "modes": args.modes, "threads": args.threads,
                    "impls": args.impls, "rounds": args.rounds}
            if args.impls and not set(args.impls) & set(GROUPS[group]):
                continue
            before = loadavg()
            try:
                proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], env=env,
                                      capture_output=True, text=True, timeout=args.timeout)
                line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                if proc.returncode or not line:
                    got = [{**spec, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}]
                else:
                    got = json.loads(line[0][7:])
            except subprocess.TimeoutExpired:
                got = [{**spec, "error": f"timed out after {args.timeout:.0f} s"}]
            after = loadavg()
            print(f"# {group} L={length}: load average before {before[0]:.2f}, after {after[0]:.2f}", flush=True)
            for res in got:
                res.update(load_before=before, load_after=after)
                results.append(res)
                print(json.dumps({k: v for k, v in res.items() if k != "times_s"}), flush=True)
            if args.out:
                with open(args.out, "w") as f:
                    json.dump(data, f, indent=1)
    data["load_after"] = loadavg()
    data["wall_s"] = time.perf_counter() - t_start
    if args.out:
        with open(args.out, "w") as f:
            json.dump(data, f, indent=1)
    table = report(data)
    print(f"# load average after: {data['load_after']}; wall time {data['wall_s']:.0f} s", flush=True)
    print(table)
    if args.table:
        with open(args.table, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
