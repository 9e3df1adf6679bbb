"""Training-step time of attnkit SAITS (fp32 and bf16 autocast) vs PyPOTS SAITS, interleaved in one process.

Paper PhysioNet-2012 sizes (5 layers, d_model 256, 8 heads, d_k = d_v = 32, d_ffn 512), batch 128 x 48 x 37,
80% missing, 20% MIT masking per batch, Adam. Reports seconds per step (minimum over rounds) and ratios.
"attnkit bf16-mixed sdpa" pins the fused SDPA kernel in every layer that needs no weights (what ``auto``
picked before SAITS switched bf16-on-CPU to the math path), to show what that choice is worth.

    OMP_NUM_THREADS=1 python benchmarks/saits_speed.py --steps 5 --rounds 2
    OMP_NUM_THREADS=1 python benchmarks/saits_speed.py --batches 128 32 --steps 4 --rounds 3

``--batches`` times only attnkit bf16-mixed at each batch size, interleaved, and reports the time per 128
samples (the cost of an epoch at that batch size, relative to the others).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from attnkit.timeseries import saits_physionet2012
from attnkit.timeseries.masking import mcar_mask
from attnkit.timeseries.tasks import masked_mae


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, obs: torch.Tensor,
               bf16: bool) -> None:
    """One attnkit SAITS training step: 20% of the observed values masked (MIT), ORT + MIT loss, Adam."""
    hidden = mcar_mask(obs, 0.2)
    given = obs & ~hidden
    x0 = x * obs
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(x0 * given, given.float())
    ort = torch.stack([masked_mae(e.float(), x0, given) for e in out.estimates]).mean()
    loss = ort + masked_mae(out.x_tilde_3.float(), x0, hidden)
    opt.zero_grad()
    loss.backward()
    opt.step()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batches", type=int, nargs="+", default=None,
                   help="time attnkit bf16-mixed at these batch sizes instead (per 128 samples)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.batches:
        batch_sweep(args.batches, args.steps, args.rounds)
        return
    from pypots.imputation.saits.core import _SAITS
    from pypots.nn.modules.loss import MAE

    torch.manual_seed(0)
    x = torch.randn(128, 48, 37)
    obs = torch.rand(128, 48, 37) > 0.8
    ours = saits_physionet2012()
    pinned = saits_physionet2012()
    for layer in [*pinned.block1, *pinned.block2]:
        layer.backend = "sdpa"
    ref = _SAITS(5, 48, 37, 256, 8, 32, 32, 512, 0.0, 0.0, True, 1, 1, MAE(), MAE())
    opt_o = torch.optim.Adam(ours.parameters(), 1e-3)
    opt_r = torch.optim.Adam(ref.parameters(), 1e-3)
    opt_p = torch.optim.Adam(pinned.parameters(), 1e-3)

    def attnkit_step(bf16: bool, model: torch.nn.Module = ours, opt: torch.optim.Optimizer = opt_o) -> None:
        train_step(model, opt, x, obs, bf16)

    def pypots_step() -> None:
        hidden = mcar_mask(obs, 0.2)
        given = obs & ~hidden
        x0 = x * obs
        r = ref({"X": x0 * given, "missing_mask": given.float(), "X_ori": x0, "indicating_mask": hidden.float()},
                calc_criterion=True)
        opt_r.zero_grad()
        r["loss"].backward()
        opt_r.step()

    fns = {"pypots fp32": pypots_step, "attnkit fp32": lambda: attnkit_step(False),
           "attnkit bf16-mixed": lambda: attnkit_step(True),
           "attnkit bf16-mixed sdpa": lambda: attnkit_step(True, pinned, opt_p)}
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"thread(s), load average before {os.getloadavg()[0]:.1f}", flush=True)
    best = dict.fromkeys(fns, float("inf"))
    for r in range(args.rounds):
        for name, f in fns.items():
            f()  # warm-up
            t = time.perf_counter()
            for _ in range(args.steps):
                f()
            sec = (time.perf_counter() - t) / args.steps
            best[name] = min(best[name], sec)
            print(f"round {r + 1} {name:24s} {sec:7.3f} s/step", flush=True)
    for name, s in best.items():
        print(f"{name:24s} {s:7.3f} s/step   speed-up vs PyPOTS {best['pypots fp32'] / s:4.2f}x")
    print(f"load average after {os.getloadavg()[0]:.1f}")


def batch_sweep(batches: list[int], steps: int, rounds: int) -> None:
    """Seconds per 128 samples of an attnkit bf16-mixed training step at each batch size, interleaved."""
    torch.manual_seed(0)
    model = saits_physionet2012()
    opt = torch.optim.Adam(model.parameters(), 1e-3, fused=True)
    data = {b: (torch.randn(b, 48, 37), torch.rand(b, 48, 37) > 0.8) for b in batches}

    def step(b: int) -> None:
        train_step(model, opt, *data[b], bf16=True)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load average before "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    best = dict.fromkeys(batches, float("inf"))
    for r in range(rounds):
        for b in batches:
            n = max(1, steps * 128 // b)  # the same number of samples at every batch size
            step(b)  # warm-up
            t = time.perf_counter()
            for _ in range(n):
                step(b)
            per128 = (time.perf_counter() - t) / (n * b) * 128
            best[b] = min(best[b], per128)
            print(f"round {r + 1} batch {b:4d}: {per128:6.3f} s per 128 samples ({n} steps)", flush=True)
    for b in batches:
        print(f"batch {b:4d}: {best[b]:6.3f} s per 128 samples, {best[b] / best[batches[0]]:4.2f}x batch "
              f"{batches[0]}'s")
    print(f"load average after {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
