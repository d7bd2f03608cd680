"""The reference for operator/bench/prepare.ts: the same job as `smolstage data prepare` done with
Python `tokenizers` — read JSON Lines, encode in batches (Rust, all cores), route each document
to train/validation by the sha256 of its text, write uint16/uint32 token shards with EOS after
every document plus uint32 document offsets. Prints one JSON line: {"tokens", "documents", "seconds"}.

usage: python prepare_reference.py TOKENIZER_JSON OUT_DIR VALIDATION_FRACTION INPUT.jsonl...
"""
import hashlib
import json
import os
import sys
import time

import numpy as np
from tokenizers import Tokenizer

BATCH = 256


def main():
    tokenizer_path, out_dir, fraction, *inputs = sys.argv[1:]
    fraction = float(fraction)
    start = time.perf_counter()
    tokenizer = Tokenizer.from_file(tokenizer_path)
    eos = tokenizer.token_to_id("<|endoftext|>")
    dtype = np.uint16 if tokenizer.get_vocab_size(with_added_tokens=True) <= 65535 else np.uint32
    os.makedirs(out_dir, exist_ok=True)
    total_tokens = total_documents = 0
    for index, path in enumerate(inputs):
        splits = {"train": ([], [0]), "validation": ([], [0])}

        def flush(batch):
            for text, encoding in zip(batch, tokenizer.encode_batch(batch, add_special_tokens=False)):
                held_out = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") / 2**32 < fraction
                pieces, offsets = splits["validation" if held_out else "train"]
                pieces.append(np.asarray(encoding.ids + [eos], dtype=dtype))
                offsets.append(offsets[-1] + len(encoding.ids) + 1)

        batch = []
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    text = json.loads(line)["text"]
                    if text:
                        batch.append(text)
                if len(batch) >= BATCH:
                    flush(batch)
                    batch = []
        flush(batch)
        for split, (pieces, offsets) in splits.items():
            if len(offsets) == 1:
                continue
            tokens = np.concatenate(pieces)
            tokens.tofile(os.path.join(out_dir, f"{split}-{index:05d}.tokens"))
            np.asarray(offsets, dtype=np.uint32).tofile(os.path.join(out_dir, f"{split}-{index:05d}.docs"))
            total_tokens += len(tokens)
            total_documents += len(offsets) - 1
    print(json.dumps({"tokens": total_tokens, "documents": total_documents, "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
