"""Runs the native trainer benchmark and the PyTorch one on the same configurations, prints a
table and writes JSON. Each measurement runs in its own process (peak memory is per row).

  bench_compare.py --bench-bin build/smolstage_bench --presets tiny,tiny-gqa,smollm2-135m \
      --seqs 256,1024 --tokens 1024 --steps 3 --warmup 1 --threads 2 --torch-devices cpu --out r.json
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def run_json(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["failed"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench-bin", required=True)
    ap.add_argument("--presets", default="tiny,tiny-gqa,smollm2-135m")
    ap.add_argument("--seqs", default="256,1024")
    ap.add_argument("--tokens", type=int, default=1024, help="tokens per optimizer step (batch = tokens / seq)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--torch-devices", default="cpu", help="comma list: cpu, cuda")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    devices = [d for d in args.torch_devices.split(",") if d]
    rows = []
    for preset in args.presets.split(","):
        config = subprocess.run([args.bench_bin, "--preset", preset, "--print-config"], capture_output=True, text=True,
                                check=True).stdout
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write(config)
            config_path = f.name
        for seq in (int(s) for s in args.seqs.split(",")):
            batch = max(1, args.tokens // seq)
            common = ["--seq", str(seq), "--batch", str(batch), "--steps", str(args.steps), "--warmup",
                      str(args.warmup), "--threads", str(args.threads)]
            row = {"preset": preset, "seq": seq, "batch": batch, "threads": args.threads}
            print(f"# {preset} seq={seq} batch={batch}: smolstage", file=sys.stderr, flush=True)
            row["smolstage"] = run_json([args.bench_bin, "--preset", preset] + common)
            for device in devices:
                print(f"# {preset} seq={seq} batch={batch}: pytorch {device}", file=sys.stderr, flush=True)
                row[f"pytorch_{device}"] = run_json([sys.executable, os.path.join(HERE, "bench_torch.py"), "--config",
                                                     config_path, "--device", device] + common)
            ours = row["smolstage"].get("tokensPerSec")
            for device in devices:
                theirs = row[f"pytorch_{device}"].get("tokensPerSec")
                row[f"ratio_vs_{device}"] = ours / theirs if ours and theirs else None
            rows.append(row)
        os.unlink(config_path)

    header = f"{'preset':<14}{'seq':>6}{'batch':>6}{'ours tok/s':>12}{'ours MB':>9}"
    for d in devices:
        header += f"{'torch-' + d + ' tok/s':>18}{'MB':>8}{'ratio':>8}"
    print(f"threads={args.threads} cpu_count={os.cpu_count()} machine={platform.processor() or platform.machine()}")
    print(header)
    for r in rows:
        o = r["smolstage"]
        line = f"{r['preset']:<14}{r['seq']:>6}{r['batch']:>6}"
        line += f"{o.get('tokensPerSec', float('nan')):>12.1f}{o.get('peakMemMB', float('nan')):>9.0f}"
        for d in devices:
            t = r[f"pytorch_{d}"]
            ratio = r[f"ratio_vs_{d}"]
            line += f"{t.get('tokensPerSec', float('nan')):>18.1f}{t.get('peakMemMB', float('nan')):>8.0f}"
            line += f"{ratio:>8.2f}" if ratio else f"{'n/a':>8}"
        print(line)
    with open(args.out, "w") as f:
        json.dump({"threads": args.threads, "cpuCount": os.cpu_count(), "tokensPerStep": args.tokens,
                   "steps": args.steps, "rows": rows}, f, indent=2)
    print(f"wrote {args.out}", flush=True)
    failed = [r for r in rows if "error" in r["smolstage"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
