"""Runs the native trainer benchmark and the PyTorch one on the same configurations, prints a
table and writes JSON. Each measurement runs in its own process (peak memory is per row).

  bench_compare.py --bench-bin build/smolstage_bench --presets tiny,tiny-gqa,smollm2-135m \
      --seqs 256,1024 --tokens 1024 --steps 3 --warmup 1 --threads 2 --torch-devices cpu --out r.json

On a GPU: --backend cuda runs our CUDA backend; --torch-devices takes DEVICE or DEVICE:MODE
entries (MODE: float32, tf32, bf16-autocast; see bench_torch.py), e.g.
cuda:float32,cuda:tf32,cuda:bf16-autocast; --peak-tflops adds a model-FLOPs-utilization column
per implementation: MFU = 6·params·tokens/s / peak (params: every weight, embeddings included;
attention's T² FLOPs not counted). Memory: host peak RSS on the CPU; on CUDA, device memory (ours:
what the backend holds after the steps, cuBLAS workspace aside; PyTorch: max_memory_allocated).
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def run_json(cmd, timeout=300):
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": [f"timed out after {timeout} s"]}
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["failed"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def param_count(m):
    """Parameters of the Llama model described by a --print-config ModelConfig."""
    c, f, v = m["hiddenSize"], m["intermediateSize"], m["vocabSize"]
    kv = c // m["numHeads"] * m["numKvHeads"]
    layer = 2 * c * c + 2 * c * kv + 3 * c * f + 2 * c
    return v * c * (1 if m["tieEmbeddings"] else 2) + m["numLayers"] * layer + c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench-bin", required=True)
    ap.add_argument("--backend", default="cpu", help="our backend: cpu or cuda")
    ap.add_argument("--presets", default="tiny,tiny-gqa,smollm2-135m")
    ap.add_argument("--seqs", default="256,1024")
    ap.add_argument("--tokens", type=int, default=1024, help="tokens per optimizer step (batch = tokens / seq)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--torch-devices", default="cpu", help="comma list of DEVICE or DEVICE:MODE (cpu, cuda:tf32, ...)")
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="peak for the MFU column (0: no MFU)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    runs = [d for d in args.torch_devices.split(",") if d]
    rows = []
    for preset in args.presets.split(","):
        config = subprocess.run([args.bench_bin, "--preset", preset, "--print-config"], capture_output=True, text=True,
                                check=True).stdout
        params = param_count(json.loads(config))
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write(config)
            config_path = f.name
        for seq in (int(s) for s in args.seqs.split(",")):
            batch = max(1, args.tokens // seq)
            common = ["--seq", str(seq), "--batch", str(batch), "--steps", str(args.steps), "--warmup",
                      str(args.warmup), "--threads", str(args.threads)]
            row = {"preset": preset, "seq": seq, "batch": batch, "threads": args.threads, "params": params}
            print(f"# {preset} seq={seq} batch={batch}: smolstage {args.backend}", file=sys.stderr, flush=True)
            row["smolstage"] = run_json([args.bench_bin, "--preset", preset, "--backend", args.backend] + common)
            # On a GPU, compare device memory (what PyTorch reports), not host RSS.
            held = re.search(r"(\d+) MiB device memory held", row["smolstage"].get("backend", ""))
            if held:
                row["smolstage"]["hostPeakMemMB"] = row["smolstage"]["peakMemMB"]
                row["smolstage"]["peakMemMB"] = float(held.group(1))
            for run in runs:
                device, _, mode = run.partition(":")
                print(f"# {preset} seq={seq} batch={batch}: pytorch {run}", file=sys.stderr, flush=True)
                row[f"pytorch_{run}"] = run_json([sys.executable, os.path.join(HERE, "bench_torch.py"), "--config",
                                                  config_path, "--device", device, "--dtype", mode or "float32"]
                                                 + common)
            ours = row["smolstage"].get("tokensPerSec")
            for run in runs:
                theirs = row[f"pytorch_{run}"].get("tokensPerSec")
                row[f"ratio_vs_{run}"] = ours / theirs if ours and theirs else None
            if args.peak_tflops > 0:
                for key in ["smolstage"] + [f"pytorch_{run}" for run in runs]:
                    tps = row[key].get("tokensPerSec")
                    row[key]["mfu"] = 6 * params * tps / (args.peak_tflops * 1e12) if tps else None
            rows.append(row)
        os.unlink(config_path)

    mfu = args.peak_tflops > 0
    header = f"{'preset':<14}{'seq':>6}{'batch':>6}{'ours tok/s':>12}{'ours MB':>9}" + (f"{'MFU':>7}" if mfu else "")
    for run in runs:
        header += f"{'torch-' + run + ' tok/s':>32}{'MB':>8}" + (f"{'MFU':>7}" if mfu else "") + f"{'ratio':>8}"
    print(f"ours={args.backend} threads={args.threads} cpu_count={os.cpu_count()} "
          f"machine={platform.processor() or platform.machine()}")
    if mfu:
        print(f"MFU = 6·params·tokens/s / {args.peak_tflops:g} TFLOP/s (params include embeddings)")
    print(header)

    def mfu_cell(result):
        if not mfu:
            return ""
        value = result.get("mfu")
        return f"{100 * value:>6.1f}%" if value else f"{'n/a':>7}"

    for r in rows:
        o = r["smolstage"]
        line = f"{r['preset']:<14}{r['seq']:>6}{r['batch']:>6}"
        line += f"{o.get('tokensPerSec', float('nan')):>12.1f}{o.get('peakMemMB', float('nan')):>9.0f}" + mfu_cell(o)
        for run in runs:
            t = r[f"pytorch_{run}"]
            ratio = r[f"ratio_vs_{run}"]
            line += f"{t.get('tokensPerSec', float('nan')):>32.1f}{t.get('peakMemMB', float('nan')):>8.0f}"
            line += mfu_cell(t)
            line += f"{ratio:>8.2f}" if ratio else f"{'n/a':>8}"
        print(line)
    for r in rows:
        for key, result in r.items():
            if isinstance(result, dict) and "error" in result:
                print(f"error: {r['preset']} seq={r['seq']} {key}: {result['error']}")
    with open(args.out, "w") as f:
        json.dump({"backend": args.backend, "threads": args.threads, "cpuCount": os.cpu_count(),
                   "tokensPerStep": args.tokens, "steps": args.steps, "peakTflops": args.peak_tflops or None,
                   "rows": rows}, f, indent=2)
    print(f"wrote {args.out}", flush=True)
    failed = [r for r in rows if "error" in r["smolstage"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
