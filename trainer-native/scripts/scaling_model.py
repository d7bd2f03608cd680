#!/usr/bin/env python3
"""Step-time model of data-parallel training on H100 nodes (docs/scaling.md).

A model, not a measurement: per-GPU compute time comes from a single-GPU throughput (measured
where we have one, an MFU assumption where we do not), and gradient all-reduce time from the
ring formula 2(n-1)/n * bytes / bandwidth, hierarchical (NVLink inside a node, one 400 Gb/s
InfiniBand rail per GPU across nodes). With overlap, the all-reduce of all buckets but the last
runs during the backward pass (about 2/3 of the compute); what does not fit is exposed.

    python3 trainer-native/scripts/scaling_model.py            # the table in docs/scaling.md
    python3 trainer-native/scripts/scaling_model.py --json     # the same rows as JSON
"""

import argparse
import json

PEAK_BF16 = 989e12  # H100 SXM dense bf16 FLOP/s
NVLINK_BUS = 360e9  # bytes/s: NCCL all-reduce bus bandwidth inside an 8-GPU H100 node (NVLink 4)
IB_PER_GPU = 400e9 / 8 * 0.9  # bytes/s: one 400 Gb/s rail per GPU, ~90% achievable
GPUS_PER_NODE = 8
BUCKET = 25 * 2**20  # bytes per gradient bucket (the trainer's default)
BACKWARD_SHARE = 2 / 3  # backward ≈ 2× forward

MODELS = {
    # name: (parameters, layers, hidden, seq)
    "smollm2-135m": (134_515_008, 30, 576, 2048),
    "smollm2-1.7b": (1_711_376_384, 24, 2048, 2048),
}


def flops_per_token(params, layers, hidden, seq):
    # 6N for the dense part plus causal attention's score/value products (6·L·S·H, halved causal).
    return 6 * params + 6 * layers * seq * hidden


def allreduce_seconds(n_gpus, grad_bytes):
    if n_gpus <= 1:
        return 0.0
    nodes = max(1, n_gpus // GPUS_PER_NODE)
    local = min(n_gpus, GPUS_PER_NODE)
    # Reduce-scatter + all-gather inside the node, then a ring across nodes on 1/local of the data.
    intra = 2 * (local - 1) / local * grad_bytes / NVLINK_BUS
    # Each GPU sends its 1/local shard over its own rail, all rails at once.
    inter = 0.0 if nodes == 1 else 2 * (nodes - 1) / nodes * (grad_bytes / local) / IB_PER_GPU
    return intra + inter


def row(model, n_gpus, global_tokens, tok_per_s_1gpu, grad_bytes_per_param, source):
    params, layers, hidden, seq = MODELS[model]
    tokens_per_gpu = global_tokens / n_gpus
    compute = tokens_per_gpu / tok_per_s_1gpu
    grad_bytes = params * grad_bytes_per_param
    comm = allreduce_seconds(n_gpus, grad_bytes)
    hideable = compute * BACKWARD_SHARE
    last_bucket = allreduce_seconds(n_gpus, min(BUCKET, grad_bytes))
    exposed = max(last_bucket, comm - hideable) if n_gpus > 1 else 0.0
    step = compute + exposed
    per_gpu = tokens_per_gpu / step
    mfu = per_gpu * flops_per_token(params, layers, hidden, seq) / PEAK_BF16
    return {
        "model": model,
        "gpus": n_gpus,
        "source": source,
        "grad_dtype_bytes": grad_bytes_per_param,
        "compute_ms": compute * 1e3,
        "allreduce_ms": comm * 1e3,
        "exposed_ms": exposed * 1e3,
        "tok_per_s_per_gpu": per_gpu,
        "mfu": mfu,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--global-tokens", type=float, default=2 * 2**20, help="tokens per optimizer step (2M)")
    args = parser.parse_args()

    rows = []
    for model in MODELS:
        params, layers, hidden, seq = MODELS[model]
        at_40 = 0.40 * PEAK_BF16 / flops_per_token(params, layers, hidden, seq)
        scenarios = [(at_40, 2, "40% MFU target, bf16 grads")]
        if model == "smollm2-135m":
            # Measured on an H200 (trainer-native/bench/RESULTS.md): ours fp32/TF32 34,243 tok/s,
            # PyTorch bf16 autocast 125,720 tok/s, both at seq 1024.
            scenarios = [(34_243, 4, "measured: ours today (fp32 grads)"), (125_720, 2, "measured: PyTorch bf16")] + scenarios
        for tok_s, grad_bytes, source in scenarios:
            for n in (8, 16, 32, 64, 128, 256):
                rows.append(row(model, n, args.global_tokens, tok_s, grad_bytes, source))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| model | single-GPU throughput | GPUs | compute ms | all-reduce ms | exposed ms | tok/s per GPU | MFU |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['source']} | {r['gpus']} | {r['compute_ms']:.0f} | {r['allreduce_ms']:.0f} | "
            f"{r['exposed_ms']:.1f} | {r['tok_per_s_per_gpu']:,.0f} | {100 * r['mfu']:.1f}% |"
        )


if __name__ == "__main__":
    main()
