"""Training throughput (clips/s) and inference time per minute of audio: self-attention tagger vs CNN baseline.

Both models are built exactly as in the packaged configs (tagging-scores / tagging-scores-cnn, or the
paper-sized tagging-mtat / tagging-mtat-cnn with --paper) and timed in the same process, one after the
other, with the same thread count. Training: forward + backward + Adam step on a batch of random chunks of
each config's chunk length. Inference: song-level prediction (chunks averaged) of one minute of audio.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tagging_speed.py [--paper] [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.resources
import json
import os
import platform
import time

import torch
import yaml

from attnkit.audio.tagging.task import song_average


def build(config: str) -> tuple[torch.nn.Module, float, int]:
    text = (importlib.resources.files("attnkit.audio") / "configs" / f"{config}.yaml").read_text()
    cfg = yaml.safe_load(text)
    spec = cfg["model"]["init_args"]["model"]
    module, _, name = spec["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    model = cls(num_tags=50, **spec["init_args"])
    data = cfg["data"]["init_args"]
    return model, float(data["chunk_seconds"]), int(data["batch_size"])


def timeit(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--paper", action="store_true", help="time the paper-sized MTAT configs")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    configs = ["tagging-mtat", "tagging-mtat-cnn"] if a.paper else ["tagging-scores", "tagging-scores-cnn"]
    rows = {}
    for config in configs:
        model, chunk_s, batch = build(config)
        sr = model.sample_rate
        chunk = round(chunk_s * sr)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        x, y = torch.randn(batch, chunk), (torch.rand(batch, 50) < 0.1).float()

        def step(model: torch.nn.Module = model, x: torch.Tensor = x, y: torch.Tensor = y,
                 opt: torch.optim.Optimizer = opt) -> None:
            model.train()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        t_train = timeit(step, a.repeats)
        minute = torch.randn(60 * sr)
        n = -(-minute.numel() // chunk)
        starts = torch.linspace(0, minute.numel() - chunk, n).round().long().tolist()
        chunks = torch.stack([minute[s : s + chunk] for s in starts])

        @torch.no_grad()
        def infer(model: torch.nn.Module = model, chunks: torch.Tensor = chunks, n: int = n) -> None:
            model.eval()
            song_average(torch.sigmoid(model(chunks)), torch.zeros(n, dtype=torch.long), 1)

        t_inf = timeit(infer, a.repeats)
        rows[config] = {"params": sum(p.numel() for p in model.parameters()), "chunk_s": chunk_s, "batch": batch,
                        "train_clips_per_s": batch / t_train, "train_audio_s_per_s": batch * chunk_s / t_train,
                        "infer_s_per_audio_min": t_inf}
    a_cfg, c_cfg = configs
    out = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, threads={a.threads}, "
                      f"torch {torch.__version__}", "results": rows,
           "ratio_attention_over_cnn": {
               "train_clips_per_s": rows[a_cfg]["train_clips_per_s"] / rows[c_cfg]["train_clips_per_s"],
               "infer_s_per_audio_min": rows[a_cfg]["infer_s_per_audio_min"] / rows[c_cfg]["infer_s_per_audio_min"]}}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
