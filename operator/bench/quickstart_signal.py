"""Does the quickstart data show the staged idea? Trains a tiny Llama (HF transformers, CPU) on the
prepared quickstart shards — stage 1 prose+code, stage 2 with math added — and scores the held-out
arithmetic task after each stage, lighteval-style (acc: argmax summed log-likelihood; acc_norm:
divided by the choice's length in characters). Reads the shards and manifests directly, so it is
also an independent reader of the shard format. Prints a table and a JSON line.

usage: python quickstart_signal.py QUICKSTART_DIR [--steps 300] [--threads 1]
       (QUICKSTART_DIR from examples/data/prepare-quickstart.sh)
"""
import argparse
import json
import os

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import LlamaConfig, LlamaForCausalLM

SEQ = 64
BATCH = 32


def load_train_stream(dataset_dir):
    manifest = json.load(open(os.path.join(dataset_dir, "manifest.json")))
    dtype = {"uint16": np.uint16, "uint32": np.uint32}[manifest["dtype"]]
    parts = [np.fromfile(os.path.join(dataset_dir, s["tokens"]["path"]), dtype=dtype) for s in manifest["splits"]["train"]["shards"]]
    return np.concatenate(parts).astype(np.int64), manifest["tokenizer"]["hash"]


def batches(streams, weights, steps, rng):
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=np.float64)
    p /= p.sum()
    for _ in range(steps):
        rows = []
        for name in rng.choice(names, size=BATCH, p=p):
            stream = streams[name]
            start = rng.integers(0, len(stream) - SEQ - 1)
            rows.append(stream[start : start + SEQ + 1])
        yield torch.from_numpy(np.stack(rows))


@torch.no_grad()
def score_task(model, tokenizer, items, eos_id):
    correct = correct_norm = 0
    for item in items:
        context = tokenizer.encode(item["context"], add_special_tokens=False).ids or [eos_id]
        logliks = []
        for choice in item["choices"]:
            ids = tokenizer.encode(choice, add_special_tokens=False).ids
            x = torch.tensor([context + ids])
            logprobs = torch.log_softmax(model(x).logits[0, :-1].float(), dim=-1)
            targets = x[0, 1:]
            token_logprobs = logprobs[torch.arange(len(targets)), targets][len(context) - 1 :]
            logliks.append(token_logprobs.sum().item())
        lengths = [len(c) for c in item["choices"]]
        correct += int(np.argmax(logliks) == item["gold"])
        correct_norm += int(np.argmax([l / n for l, n in zip(logliks, lengths)]) == item["gold"])
    return correct / len(items), correct_norm / len(items)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    tokenizer = Tokenizer.from_file(os.path.join(args.root, "tokenizer.json"))
    eos_id = tokenizer.token_to_id("<|endoftext|>")
    streams = {}
    for name in ("prose", "code", "math"):
        streams[name], _ = load_train_stream(os.path.join(args.root, "datasets", name))
    items = [json.loads(line) for line in open(os.path.join(args.root, "evals", "arithmetic.jsonl"))]
    config = LlamaConfig(
        vocab_size=tokenizer.get_vocab_size(), hidden_size=128, intermediate_size=384, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.01)
    rows = []
    acc, acc_norm = score_task(model.eval(), tokenizer, items, eos_id)
    rows.append({"after": "init", "mixture": "-", "loss": None, "acc": acc, "acc_norm": acc_norm})
    for stage, mixture in (("stage 1", {"prose": 0.7, "code": 0.3}), ("stage 2", {"prose": 0.5, "code": 0.2, "math": 0.3})):
        model.train()
        for batch in batches(streams, mixture, args.steps, rng):
            loss = model(input_ids=batch[:, :-1], labels=batch[:, :-1]).loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        acc, acc_norm = score_task(model.eval(), tokenizer, items, eos_id)
        rows.append({"after": stage, "mixture": mixture, "loss": loss.item(), "acc": acc, "acc_norm": acc_norm})
    print(f"quickstart signal: tiny Llama ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params), {args.steps} steps x {BATCH} x {SEQ} tokens per stage, {len(items)} arithmetic items (chance 0.25)")
    print("| after | mixture | train loss | acc | acc_norm |")
    print("|---|---|---|---|---|")
    for row in rows:
        loss = "-" if row["loss"] is None else f"{row['loss']:.3f}"
        print(f"| {row['after']} | {row['mixture']} | {loss} | {row['acc']:.3f} | {row['acc_norm']:.3f} |")
    print(json.dumps({"benchmark": "quickstart-signal", "rows": rows}))


if __name__ == "__main__":
    main()
