#!/usr/bin/env bash
# GPU readiness check, one script, under 10 minutes on one GPU:
#   1. every domain (demo, recsys, timeseries, vision, speech quality, music tagging): a short fit and a
#      test on tiny generated data, on one GPU in bf16-mixed (tests/cli/ddp_domains.py);
#   2. attention on CUDA: SDPA through the flash and memory-efficient kernels, attnkit backend="auto" and
#      FlexAttention compiled (causal mask), each checked against the float32 math reference;
#   3. where two GPUs exist: the same domains with 2 processes (DDP, NCCL), test metrics compared with 1 GPU.
# It prints one summary table at the end and exits non-zero if a step failed.
#
#   benchmarks/gpu_check.sh          # on a CUDA machine
#   benchmarks/gpu_check.sh --cpu    # the same steps on CPU (fp32, small sizes, 2 CPU processes): keeps it working in CI
#
# Environment: PYTHON (default .venv/bin/python), GPU_CHECK_DIR (scratch folder, default a fresh temp dir, removed).
set -uo pipefail

MODE=gpu
if [[ "${1:-}" == "--cpu" ]]; then MODE=cpu; elif [[ -n "${1:-}" ]]; then
    echo "usage: $0 [--cpu]" >&2; exit 2
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
WORK="${GPU_CHECK_DIR:-$(mktemp -d -t attnkit-gpu-check.XXXXXX)}"
if [[ -z "${GPU_CHECK_DIR:-}" ]]; then trap 'rm -rf "$WORK"' EXIT; fi
mkdir -p "$WORK" || exit 2
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" PYTHONWARNINGS=ignore
SUMMARY="$WORK/summary.tsv"
: > "$SUMMARY"

if [[ $MODE == gpu ]]; then
    NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
    if [[ "$NGPU" -lt 1 ]]; then echo "no CUDA device visible; run with --cpu" >&2; exit 2; fi
    ACC=gpu; PREC=bf16-mixed; NDDP=$NGPU
    "$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__, '| CUDA', torch.version.cuda)"
else
    ACC=cpu; PREC=32-true; NDDP=2
    echo "CPU mode: $(getconf _NPROCESSORS_ONLN) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
fi

# step NAME TIMEOUT_S COMMAND...: runs a step under a time limit, records status and seconds
step() {
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS rc
    echo "== $name"
    timeout "$limit" "$@" > "$WORK/$name.log" 2>&1
    rc=$?
    local status=ok; [[ $rc -eq 124 ]] && status="timeout (${limit}s)"; [[ $rc -ne 0 && $rc -ne 124 ]] && status="FAILED rc=$rc"
    [[ $rc -ne 0 ]] && tail -20 "$WORK/$name.log"
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - t0))" "$(grep '^NOTE ' "$WORK/$name.log" | tail -1 | cut -c6-)" >> "$SUMMARY"
}

DOMAINS_PY="$ROOT/tests/cli/ddp_domains.py"
step make-data 300 "$PY" "$DOMAINS_PY" "$WORK/data" "$WORK/none" --make-data --domains ""

step "domains-1x$ACC" 400 "$PY" "$DOMAINS_PY" "$WORK/data" "$WORK/one" --devices 1 --accelerator "$ACC" --precision "$PREC"

step "attention-$ACC" 300 "$PY" - "$MODE" <<'EOF'
import sys, time
import torch
import torch.nn.functional as F
from attnkit.core import attention
from attnkit.core.attention.masks import CausalMask

mode = sys.argv[1]
dev = "cuda" if mode == "gpu" else "cpu"
dtype = torch.bfloat16 if mode == "gpu" else torch.float32
B, H, D = (4, 8, 64) if mode == "gpu" else (1, 4, 64)
lengths = (1024, 4096) if mode == "gpu" else (256,)
rows = []

def timed(fn, reps=10):
    fn()
    if dev == "cuda": torch.cuda.synchronize()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter(); fn()
        if dev == "cuda": torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best * 1e3

for L in lengths:
    q, k, v = (torch.randn(B, H, L, D, device=dev, dtype=dtype) for _ in range(3))
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
    cases = {"auto": lambda: attention(q, k, v, CausalMask(), backend="auto"),
             "flex (compiled)": lambda: attention(q, k, v, CausalMask(), backend="flex")}
    if dev == "cuda":
        from torch.nn.attention import SDPBackend, sdpa_kernel
        def kern(b):
            def f():
                with sdpa_kernel(b):
                    return F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return f
        cases = {"sdpa flash": kern(SDPBackend.FLASH_ATTENTION),
                 "sdpa mem-efficient": kern(SDPBackend.EFFICIENT_ATTENTION), **cases}
    else:
        cases = {"sdpa": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), **cases}
    for name, fn in cases.items():
        err = (fn().float() - ref).abs().max().item()
        ms = timed(fn)
        rows.append((L, name, ms, err))
        print(f"L={L:5d} {name:20s} {ms:8.3f} ms  max|err| vs fp32 math {err:.2e}")
        tol = 3e-2 if dtype == torch.bfloat16 else 1e-4
        assert err < tol, f"{name} at L={L}: error {err} over {tol}"
best = min(rows, key=lambda r: r[2] if r[0] == lengths[-1] else float("inf"))
print(f"NOTE L={lengths[-1]}: fastest {best[1]} {best[2]:.2f} ms; all within tolerance of fp32 math")
EOF

if [[ "$NDDP" -ge 2 ]]; then
    step "domains-${NDDP}x$ACC-ddp" 400 "$PY" "$DOMAINS_PY" "$WORK/data" "$WORK/ddp" --devices "$NDDP" \
        --accelerator "$ACC" --precision "$PREC" --ckpt-dir "$WORK/one"
    step compare-ddp 60 "$PY" - "$WORK/one" "$WORK/ddp" <<'EOF'
import json, sys
from pathlib import Path
one, ddp = Path(sys.argv[1]), Path(sys.argv[2])
worst = 0.0
for f in sorted(one.glob("*.json")):
    if "samples" in f.name:
        continue
    a, b = json.loads(f.read_text())["test"], json.loads((ddp / f.name).read_text())["test"]
    for key in a:
        rel = abs(a[key] - b[key]) / max(abs(a[key]), 1e-12)
        worst = max(worst, rel)
        print(f"{f.stem:11s} {key:18s} 1 device {a[key]:.6f}  DDP {b[key]:.6f}  rel {rel:.1e}")
print(f"NOTE worst relative gap of test metrics, DDP vs 1 device: {worst:.1e}")
assert worst < 1e-2, "DDP test metrics differ from one device"
EOF
else
    printf '%s\t%s\t%s\t%s\n' "domains-ddp" "skipped" "0" "only $NDDP GPU visible" >> "$SUMMARY"
fi

echo
echo "| step | status | seconds | note |"
echo "|---|---|---:|---|"
awk -F'\t' '{printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4}' "$SUMMARY"
awk -F'\t' '$2 ~ /^(FAILED|timeout)/ {bad = 1} END {exit bad}' "$SUMMARY"
