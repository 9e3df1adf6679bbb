"""Speed of attnkit.vision models against smp Unet, same process, same machine, interleaved.

Measures (a) training throughput: images/s of forward + backward + Adam step on random 256x256 patches
(batch 4: the *-monuseg configs' patch and batch size), and (b) inference time for one 1000x1000 image with
sliding windows (256, overlap 0.25, Gaussian blending), as the MoNuSeg evaluation runs. Variants marked
"fast" use the reduced-resolution attention options (UTransformer ``gate_stride``, MSGANet
``attention_kv_stride``); the others are the paper-faithful defaults. ``--profile N`` prints the N
most expensive operators of one training step per model (torch.profiler, CPU) before timing. Models are
timed round-robin and the median is reported, so load from other processes hits all of them alike; ratios
are against smp Unet (train step time and inference time: lower is faster), each followed by its lowest and highest
value over the rounds (a round's time over the baseline's in the same round; the JSON keeps every round's times and
ratios), in the same memory format:
channels-last by default, as ``SegmentationTask`` runs every model (``--memory-format contiguous`` or ``both``).
``--isolate`` keeps each model in its own worker process (still timed round-robin, one at a time), as a training
run holds one model: no model then shares the allocator or caches with the others (on the AVX2 EPYC of the
twenty-eighth session this did not move the ratios beyond their run-to-run spread; most of that spread was TransDAE's
and MSGANet's slow second and third steps, timed after a single warm-up step until the twenty-ninth session:
``--warmup``, default 3; docs/benchmarks.md).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/vision_speed.py --threads 1 --repeats 3

MONAI's AttentionUnet (Oktay et al. 2018; widths 64..1024) joins when `monai` is importable; it is not a
project dependency -- install it outside the lock, e.g. `uv pip install --target /tmp/monai-lib --no-deps
monai` and run with `PYTHONPATH=/tmp/monai-lib`. `--bf16` runs everything under CPU bf16 autocast.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import segmentation_models_pytorch as smp
import torch
from torch import nn

from attnkit.core.runtime import configure_allocator
from attnkit.vision import MSGANet, SegmentationLoss, TransDAE, UTransformer, sliding_window_inference

# the transdae-monuseg widths (no smp encoder: --encoder does not apply)
TRANSDAE = {"num_classes": 2, "dims": (64, 128, 320, 512), "depths": (2, 2, 2, 2), "num_heads": (1, 2, 5, 8),
            "decoder_channels": (256, 128, 64, 32, 16)}


SYSTEM_MALLOC = " [malloc system]"  # with --malloc both: the model timed in a process with glibc's own settings


def builders(encoder: str) -> dict[str, Callable[[], nn.Module]]:
    out: dict[str, Callable[[], nn.Module]] = {
        "smp Unet": lambda: smp.Unet(encoder, encoder_weights=None, classes=2),
        "UTransformer": lambda: UTransformer(encoder, num_classes=2, num_heads=8),
        "UTransformer (fast: gate_stride 8)": lambda: UTransformer(encoder, num_classes=2, num_heads=8, gate_stride=8),
        # the utransformer-isbi2012 config: the stride-4 and stride-2 skips ungated
        "UTransformer (gate_stride 8, gated_skips 2)": lambda: UTransformer(encoder, num_classes=2, num_heads=8,
                                                                            gate_stride=8, gated_skips=2),
        # the utransformer-monuseg and utransformer-ph2 configs: the bottleneck branch layer-normalised
        "UTransformer (gate_stride 8, gate_heads 1, branch_norm)": lambda: UTransformer(
            encoder, num_classes=2, num_heads=8, gate_heads=1, gate_stride=8, branch_norm=True),
        "MSGANet": lambda: MSGANet(encoder, num_classes=2),
        "MSGANet (fast: kv_stride 2)": lambda: MSGANet(encoder, num_classes=2, attention_kv_stride=2),
        "MSGANet (fast: kv_stride 4)": lambda: MSGANet(encoder, num_classes=2, attention_kv_stride=4),
        "MSGANet (fast: kv_stride 4, fine_decoder)": lambda: MSGANet(encoder, num_classes=2, attention_kv_stride=4,
                                                                     fine_decoder=True),
        "MSGANet (fast: kv_stride 8, fine_decoder)": lambda: MSGANet(encoder, num_classes=2, attention_kv_stride=8,
                                                                     fine_decoder=True),
        "MSGANet (DANet PAM)": lambda: MSGANet(encoder, num_classes=2, position_attention="danet"),
        "TransDAE": lambda: TransDAE(**TRANSDAE),
        "TransDAE (fine_skips)": lambda: TransDAE(**TRANSDAE, fine_skips=True),
    }
    try:
        from monai.networks.nets import AttentionUnet

        out["MONAI AttentionUnet"] = lambda: AttentionUnet(
            spatial_dims=2, in_channels=3, out_channels=2, channels=(64, 128, 256, 512, 1024), strides=(2, 2, 2, 2)
        )
    except ImportError:
        pass
    return out


class ChannelsLast(nn.Module):
    """Runs ``model`` with its weights and inputs in channels-last memory format (``forward`` and, where the
    model has one, ``forward_with_aux``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        aux = getattr(model, "forward_with_aux", None)
        if aux is not None:
            self.forward_with_aux = lambda x: aux(x.contiguous(memory_format=torch.channels_last))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=torch.channels_last))


def train_step_time(model: nn.Module, opt: torch.optim.Optimizer, loss: nn.Module, x: torch.Tensor,
                    y: torch.Tensor) -> float:
    t = time.perf_counter()
    opt.zero_grad()
    out = model.forward_with_aux(x).logits if hasattr(model, "forward_with_aux") else model(x)
    loss(out, y).backward()
    opt.step()
    return time.perf_counter() - t


@torch.no_grad()
def infer_time(model: nn.Module, image: torch.Tensor, patch: int) -> float:
    t = time.perf_counter()
    sliding_window_inference(image, model, patch, overlap=0.25, batch_size=4)
    return time.perf_counter() - t


def cpu_name() -> str:
    """The CPU's model name and vendor from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        info = dict(
            (k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in open("/proc/cpuinfo"))
            if k.strip() in ("model name", "vendor_id")
        )
        return f"{info.get('model name', '?')} ({info.get('vendor_id', '?')})"
    except OSError:
        return platform.processor() or platform.machine()


def kernel_rates(repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of the two kernels the models' time goes to, float32 on this process's threads (median of
    ``repeats``): a matrix product at a transformer layer's shape (TransDAE's stage 3: 1024 tokens, 320 -> 1280;
    ``nn.Linear`` takes this path, PyTorch's BLAS) and a 3x3 channels-last convolution (the U-Nets' bulk,
    oneDNN). The attention models' ratios to the U-Net grow with the second rate over the first: PyTorch's MKL
    runs float32 products on its generic code path on non-Intel CPUs (~2.5x below the convolution rate on an
    AMD EPYC with AVX-512), which costs the transformer models and not the U-Net
    (docs/training-on-more-hardware.md)."""

    def rate(f: Callable[[], object], flop: float) -> float:
        f()
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t)
        return flop / statistics.median(ts) / 1e9

    a, b = torch.randn(1024, 320), torch.randn(320, 1280)
    x = torch.randn(4, 128, 64, 64).contiguous(memory_format=torch.channels_last)
    w = torch.randn(128, 128, 3, 3).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", enabled=False):
        return {
            "matmul_gflops": rate(lambda: torch.mm(a, b), 2 * 1024 * 320 * 1280),
            "conv3x3_gflops": rate(lambda: nn.functional.conv2d(x, w, padding=1), 2 * 4 * 128 * 128 * 9 * 64 * 64),
        }


def profile_step(name: str, model: nn.Module, opt: torch.optim.Optimizer, loss: nn.Module, x: torch.Tensor,
                 y: torch.Tensor, top: int) -> None:
    """Print the ``top`` operators by self CPU time of one training step."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_step_time(model, opt, loss, x, y)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    print(f"## profile: {name}, one training step, {total / 1e6:.2f} s self CPU")
    for e in events[:top]:
        print(f"  {e.self_cpu_time_total / total:6.1%}  {e.self_cpu_time_total / 1e6:7.3f} s  {e.count:4d}x  {e.key}")


class Bench:
    """One model (``name``, with `` [channels_last]`` for that memory format; a `` [malloc system]`` suffix is
    for the worker process and ignored here), its Adam optimiser and seeded
    inputs, in this process: times a training step or a sliding-window inference of an ``image`` x ``image``
    input (1000 by default)."""

    def __init__(self, name: str, encoder: str, batch: int, patch: int, image: int) -> None:
        base = name.removesuffix(SYSTEM_MALLOC).removesuffix(" [channels_last]")
        model = builders(encoder)[base]()
        self.model = ChannelsLast(model) if " [channels_last]" in name else model
        self.opt = torch.optim.Adam(self.model.parameters(), 1e-4)
        self.loss = SegmentationLoss("dice_ce")
        g = torch.Generator().manual_seed(0)  # the same inputs in every process
        self.x = torch.randn(batch, 3, patch, patch, generator=g)
        self.y = (torch.rand(batch, patch, patch, generator=g) > 0.7).long()
        self.image = torch.randn(1, 3, image, image, generator=g)
        self.patch, self.name = patch, name
        self.params_m = sum(p.numel() for p in self.model.parameters()) / 1e6

    def train(self) -> float:
        self.model.train()
        return train_step_time(self.model, self.opt, self.loss, self.x, self.y)

    def infer(self) -> float:
        self.model.eval()
        return infer_time(self.model, self.image, self.patch)

    def profile(self, top: int) -> None:
        self.model.train()
        profile_step(self.name, self.model, self.opt, self.loss, self.x, self.y, top)


def _serve(conn: Connection, threads: int, bf16: bool, malloc: str, bench_args: tuple[Any, ...]) -> None:
    """Worker process of ``--isolate``: builds one :class:`Bench` and answers ``(method, *args)`` requests
    with the method's result (or the exception's text) until ``None`` or the parent's end of the pipe closes."""
    configure_allocator(malloc)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if bf16:
        torch.autocast("cpu", dtype=torch.bfloat16).__enter__()
    try:
        bench = Bench(*bench_args)
        conn.send(("ok", bench.params_m))
        while True:
            request = conn.recv()
            if request is None:
                return
            method, *rest = request
            conn.send(("ok", getattr(bench, method)(*rest)))
    except EOFError:
        return
    except Exception as e:  # sent to the parent, which raises it with the model's name
        conn.send(("error", f"{type(e).__name__}: {e}"))


class IsolatedBench:
    """A :class:`Bench` in its own process (``spawn``), so that no other model shares its allocator, caches or
    threads; calls block until the worker answers, at most ``timeout`` s each (the worker is then killed)."""

    def __init__(self, name: str, threads: int, bf16: bool, malloc: str, bench_args: tuple[Any, ...],
                 timeout: float) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.name, self.timeout = name, timeout
        self.proc = ctx.Process(target=_serve, args=(child, threads, bf16, malloc, bench_args), daemon=True)
        self.proc.start()
        child.close()
        self.params_m = float(self._answer())

    def _answer(self) -> Any:
        if not self.conn.poll(self.timeout):
            self.close(kill=True)
            raise TimeoutError(f"{self.name}: no answer from its worker process in {self.timeout:.0f} s")
        try:
            status, value = self.conn.recv()
        except EOFError:
            self.close(kill=True)
            raise RuntimeError(f"{self.name}: its worker process died (exit code {self.proc.exitcode})") from None
        if status != "ok":
            self.close()
            raise RuntimeError(f"{self.name}: {value}")
        return value

    def _call(self, method: str, *args: Any) -> Any:
        self.conn.send((method, *args))
        return self._answer()

    def train(self) -> float:
        return float(self._call("train"))

    def infer(self) -> float:
        return float(self._call("infer"))

    def profile(self, top: int) -> None:
        self._call("profile", top)

    def close(self, kill: bool = False) -> None:
        """Ask the worker to exit (``kill``: do not ask) and reap it, killing it if it has not exited in 10 s."""
        try:
            if self.proc.is_alive() and not kill:
                self.conn.send(None)
                self.proc.join(10)
        except (BrokenPipeError, OSError):
            pass
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def round_ratios(times: list[float], base: list[float]) -> list[float]:
    """Each round's time over the baseline's in the same round (rounds are timed model after model, so a pair
    is minutes apart at most and shares the machine's state; a ratio of medians can pair different rounds)."""
    if len(times) != len(base):
        raise ValueError(f"{len(times)} rounds against {len(base)} of the baseline")
    return [t / t0 for t, t0 in zip(times, base, strict=True)]


def spread(ratios: list[float]) -> str:
    """`` (lowest-highest)`` of per-round ratios, or nothing for a single round."""
    return f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--encoder", default="resnet34")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3, metavar="N",
                    help="untimed training steps per model before timing (on the AVX2 EPYC of the twenty-ninth "
                         "session, TransDAE's 2nd-3rd and MSGANet's 2nd training step took ~1.7-1.9x their later "
                         "ones, the U-Net's did not)")
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--bf16", action="store_true", help="CPU bf16 autocast")
    ap.add_argument("--patch", type=int, default=256, help="training patch and sliding-window size")
    ap.add_argument("--image", type=int, default=1000, help="side of the square image inference is timed on")
    ap.add_argument("--memory-format", choices=["contiguous", "channels_last", "both"], default="channels_last",
                    help="weights and inputs in this memory format (default: SegmentationTask's); 'both' times "
                         "every model in each")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="print the N top operators per model")
    ap.add_argument("--isolate", action="store_true",
                    help="each model in its own worker process, timed round-robin as before (a training run holds "
                         "one model; in one process the models' step times can depend on each other)")
    ap.add_argument("--malloc", choices=["reuse", "system", "both"], default="reuse",
                    help="glibc malloc: 'reuse' keeps freed memory for the next step, as the attnkit command runs "
                         "(attnkit.core.runtime.configure_allocator); 'system' leaves glibc's settings, which return "
                         "large blocks to the OS and fault them in again every step (the timing until the thirtieth "
                         "session); 'both' (with --isolate) times every model in each, interleaved, and prints "
                         "how much faster each is with 'reuse'")
    ap.add_argument("--call-timeout", type=float, default=1800.0, metavar="S",
                    help="with --isolate: the longest a worker may take for one step or inference")
    args = ap.parse_args()
    if args.repeats < 1 or args.warmup < 0:
        raise SystemExit(f"--repeats must be at least 1 and --warmup at least 0, got {args.repeats} and {args.warmup}")
    if args.malloc == "both" and not args.isolate:
        raise SystemExit("--malloc both needs --isolate: the allocator's settings hold for a whole process")
    malloc_changed = configure_allocator("reuse" if args.malloc == "both" else args.malloc)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    names = args.models or list(builders(args.encoder))
    unknown = [n for n in names if n not in builders(args.encoder)]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; choose from {list(builders(args.encoder))}")
    formats = {"contiguous": [""], "channels_last": [" [channels_last]"], "both": ["", " [channels_last]"]}
    mallocs = ["", SYSTEM_MALLOC] if args.malloc == "both" else [""]
    names = [n + suffix + m for n in names for suffix in formats[args.memory_format] for m in mallocs]
    if args.bf16:
        torch.autocast("cpu", dtype=torch.bfloat16).__enter__()
    models: dict[str, Bench | IsolatedBench] = {}
    train: dict[str, list[float]] = {n: [] for n in names}
    infer: dict[str, list[float]] = {n: [] for n in names}
    load0 = os.getloadavg()
    try:
        for n in names:
            bench_args = (n, args.encoder, args.batch, args.patch, args.image)
            malloc = "system" if n.endswith(SYSTEM_MALLOC) else "reuse" if args.malloc == "both" else args.malloc
            models[n] = (IsolatedBench(n, args.threads, args.bf16, malloc, bench_args, args.call_timeout)
                         if args.isolate
                         else Bench(*bench_args))
        for m in models.values():
            if args.profile:
                m.train()
                m.profile(args.profile)
        for _ in range(args.warmup):  # untimed training steps, round-robin like the timed ones
            for m in models.values():
                m.train()
        for _ in range(args.repeats):
            for n, m in models.items():
                train[n].append(m.train())
        for _ in range(max(1, args.repeats - 1)):
            for n, m in models.items():
                infer[n].append(m.infer())
    finally:
        for m in models.values():
            if isinstance(m, IsolatedBench):
                m.close()
    base = names[0]
    res: dict[str, dict[str, Any]] = {}

    def group(name: str) -> tuple[bool, bool]:  # compared against the baseline of the same format and allocator
        return " [channels_last]" in name, name.endswith(SYSTEM_MALLOC)

    rates, cpu = kernel_rates(), cpu_name()
    load1 = os.getloadavg()
    print(f"# {cpu}, torch {torch.__version__}, threads {args.threads}, "
          f"encoder {args.encoder}, batch {args.batch}x{args.patch}x{args.patch}, median of {args.repeats} "
          f"after {args.warmup} untimed steps"
          f"{', one process per model' if args.isolate else ', one process'}"
          f"{', bf16 autocast' if args.bf16 else ''}, malloc {args.malloc}"
          f"{'' if malloc_changed or args.malloc == 'system' else ' (not applied here)'}"
          f"; load average (1 min) {load0[0]:.1f} at start, "
          f"{load1[0]:.1f} at end")
    mm, conv = rates["matmul_gflops"], rates["conv3x3_gflops"]
    print(f"# float32 kernels on this CPU: matrix product (linear layers) {mm:.0f} GFLOP/s, 3x3 convolution "
          f"{conv:.0f} GFLOP/s (ratio {conv / mm:.1f}; the attention models' ratios to the U-Net grow with it)")
    print(f"# ratios against {base} in the same memory format{' and allocator' if args.malloc == 'both' else ''}")
    side = f"{args.image}x{args.image}"
    print("# (lo-hi): the lowest and highest ratio of one round's times (each model timed once per round, one after "
          "the other), how far a ratio moves within this run")
    print(f"| model | params (M) | train images/s | train step vs {base} | inference {side} (s) | vs {base} |")
    print("|---|---|---|---|---|---|")
    for n in names:
        b0 = next(b for b in names if group(b) == group(n))
        ips = args.batch / statistics.median(train[n])
        inf = statistics.median(infer[n])
        ips0 = args.batch / statistics.median(train[b0])
        inf0 = statistics.median(infer[b0])
        params = models[n].params_m
        train_rounds, infer_rounds = round_ratios(train[n], train[b0]), round_ratios(infer[n], infer[b0])
        res[n] = {"train_images_per_s": ips, "infer_s_1000": inf, "params_m": params,
                  "train_step_s": train[n], "infer_s": infer[n],
                  "train_ratio_rounds": train_rounds, "infer_ratio_rounds": infer_rounds}
        print(f"| {n} | {params:.1f} | {ips:.2f} | {ips0 / ips:.2f}x{spread(train_rounds)} | {inf:.2f} | "
              f"{inf / inf0:.2f}x{spread(infer_rounds)} |")
    if args.malloc == "both":
        print("\n# glibc's own malloc settings against 'reuse' (the attnkit command's), each model against itself: "
              "step time ratio, (lo-hi) over the rounds")
        print("| model | train step, system / reuse | inference, system / reuse |")
        print("|---|---|---|")
        for n in names:
            if n.endswith(SYSTEM_MALLOC):
                r = n.removesuffix(SYSTEM_MALLOC)
                tr, ir = round_ratios(train[n], train[r]), round_ratios(infer[n], infer[r])
                res[n]["train_vs_reuse_rounds"], res[n]["infer_vs_reuse_rounds"] = tr, ir
                print(f"| {r} | {statistics.median(train[n]) / statistics.median(train[r]):.2f}x{spread(tr)} | "
                      f"{statistics.median(infer[n]) / statistics.median(infer[r]):.2f}x{spread(ir)} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "cpu": cpu, "kernels": rates, "results": res}, f, indent=1)


if __name__ == "__main__":
    main()
