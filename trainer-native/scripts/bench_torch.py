"""PyTorch side of the trainer benchmarks: Hugging Face LlamaForCausalLM training throughput.

  bench_torch.py --config CONFIG.json --seq 256 --batch 4 --steps 3 --warmup 1 --threads 2 --device cpu

CONFIG.json is the ModelConfig printed by `smolstage_bench --print-config`. One configuration
per process, so peak RSS (CPU) or peak allocated memory (CUDA) belongs to it. Prints one JSON
object. The step matches ours: fp32 weights, forward, mean cross-entropy, backward,
clip_grad_norm_(1.0), AdamW (weight decay off for norm weights).
"""

import argparse
import json
import resource
import time

import torch
from hf_reference import build_config
from transformers import LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    # float32: fp32 GEMMs (PyTorch's default); tf32: fp32 weights, TF32 tensor-core GEMMs;
    # bf16-autocast: fp32 master weights, bf16 autocast forward/backward (mixed precision).
    ap.add_argument("--dtype", default="float32", choices=["float32", "tf32", "bf16-autocast", "bfloat16"])
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    m = json.load(open(args.config))
    cfg = build_config(m)
    device = torch.device(args.device)
    torch.set_float32_matmul_precision("high" if args.dtype == "tf32" else "highest")
    autocast = args.dtype == "bf16-autocast"
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(device)
    if args.dtype == "bfloat16":
        model = model.to(torch.bfloat16)
    model.train()
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-4, betas=(0.9, 0.95), eps=1e-8,
    )
    tokens = torch.randint(0, cfg.vocab_size, (args.batch, args.seq + 1), device=device)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(input_ids=inputs).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync()
    secs = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps({
        "impl": "pytorch", "label": args.label, "device": args.device, "dtype": args.dtype,
        "seq": args.seq, "batch": args.batch, "steps": args.steps, "threads": torch.get_num_threads(),
        "tokensPerSec": args.batch * args.seq * args.steps / secs, "secPerStep": secs / args.steps,
        "peakMemMB": peak, "loss": loss.item(), "torch": torch.__version__,
        "attention": model.config._attn_implementation,
    }))


if __name__ == "__main__":
    main()
