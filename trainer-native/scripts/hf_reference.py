"""Hugging Face transformers reference for the trainer-native parity tests (PyTorch CPU, fp32).

  hf_reference.py reference SPEC.json OUT_DIR
      Builds a random LlamaForCausalLM from the spec, saves it with save_pretrained (OUT_DIR/hf),
      and writes OUT_DIR/reference.safetensors: the token batches, logits and loss of the first
      batch, every gradient, then per-step loss / grad norm and the weights after `steps` AdamW
      steps with clip_grad_norm_.
  hf_reference.py logits MODEL_DIR TOKENS.safetensors OUT.safetensors
      Loads MODEL_DIR with from_pretrained and writes the logits of the `inputs` tensor.
  hf_reference.py sft SPEC.json OUT_DIR
      SFT: a random model (OUT_DIR/hf), token rows and a mask over their targets; the loss and
      every gradient of LlamaForCausalLM with labels = -100 outside the mask (OUT_DIR/sft.safetensors).
  hf_reference.py generate MODEL_DIR SPEC.json OUT.json
      Greedy `generate` (do_sample=False, no EOS) of spec.maxNewTokens after spec.prompt.
  hf_reference.py dpo SPEC.json OUT_DIR
      TRL's DPOTrainer on a reference model (OUT_DIR/ref) and a perturbed policy (OUT_DIR/policy):
      one collated batch of pairs, its loss, rewards metrics, reference log-probs and every
      policy gradient (OUT_DIR/dpo.safetensors, OUT_DIR/dpo.json).
  hf_reference.py shard MODEL_DIR OUT_DIR
      Re-saves MODEL_DIR sharded (max_shard_size) with rms_norm_eps rounded to float32, as
      released checkpoints come.
"""

import json
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM


def build_config(m):
    """The Hugging Face LlamaConfig of our ModelConfig (camelCase JSON); also used by bench_torch.py."""
    return LlamaConfig(
        hidden_size=m["hiddenSize"],
        num_hidden_layers=m["numLayers"],
        num_attention_heads=m["numHeads"],
        num_key_value_heads=m["numKvHeads"],
        intermediate_size=m["intermediateSize"],
        vocab_size=m["vocabSize"],
        rope_theta=m["ropeTheta"],
        rms_norm_eps=m["rmsNormEps"],
        tie_word_embeddings=m["tieEmbeddings"],
        max_position_embeddings=m["maxPositionEmbeddings"],
        initializer_range=m["initializerRange"],
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=0,
        eos_token_id=0,
    )


def mean_loss(model, rows):
    inputs, targets = rows[:, :-1], rows[:, 1:]
    logits = model(input_ids=inputs).logits
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))
    return logits, loss


def reference(spec_path, out_dir):
    spec = json.load(open(spec_path))
    torch.manual_seed(spec["seed"])
    torch.set_num_threads(spec.get("threads", 1))
    model = LlamaForCausalLM(build_config(spec["model"])).float()
    model.train()
    with torch.no_grad():
        # Norm weights start at 1; move them so their gradients are generic.
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.add_(0.2 * torch.randn_like(p))
    model.save_pretrained(f"{out_dir}/hf", safe_serialization=True)

    b, t, steps = spec["batchSize"], spec["seqLen"], len(spec["lrs"])
    tokens = torch.randint(0, spec["model"]["vocabSize"], (steps, b, t + 1), dtype=torch.int64)
    out = {"tokens": tokens.to(torch.int32)}

    logits, loss = mean_loss(model, tokens[0])
    loss.backward()
    out["logits"] = logits.detach().reshape(b * t, -1).contiguous()
    out["loss"] = loss.detach().reshape(1)
    for name, p in model.named_parameters():
        out[f"grad.{name}"] = p.grad.detach().clone()
    model.zero_grad(set_to_none=True)

    opt = spec["optimizer"]
    # Same grouping as the native trainer: no weight decay on norm weights (1-D tensors).
    decay = [p for _, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for _, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": opt["weightDecay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=spec["lrs"][0],
        betas=tuple(opt["betas"]),
        eps=opt["eps"],
        foreach=False,
    )
    losses, norms = [], []
    for step, lr in enumerate(spec["lrs"]):
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        _, loss = mean_loss(model, tokens[step])
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), opt["gradClip"])
        optimizer.step()
        losses.append(loss.item())
        norms.append(norm.item())
    out["step_losses"] = torch.tensor(losses, dtype=torch.float64)
    out["step_grad_norms"] = torch.tensor(norms, dtype=torch.float64)
    for name, p in model.named_parameters():
        out[f"after.{name}"] = p.detach().clone()
    save_file({k: v.contiguous() for k, v in out.items()}, f"{out_dir}/reference.safetensors")


def logits(model_dir, tokens_path, out_path):
    torch.set_num_threads(1)
    model = LlamaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    model.eval()
    inputs = load_file(tokens_path)["inputs"].to(torch.int64)
    with torch.no_grad():
        result = model(input_ids=inputs).logits
    save_file({"logits": result.reshape(-1, result.shape[-1]).contiguous()}, out_path)


def random_model(spec):
    torch.manual_seed(spec["seed"])
    torch.set_num_threads(spec.get("threads", 1))
    model = LlamaForCausalLM(build_config(spec["model"])).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.add_(0.2 * torch.randn_like(p))
    return model


def sft(spec_path, out_dir):
    spec = json.load(open(spec_path))
    model = random_model(spec)
    model.save_pretrained(f"{out_dir}/hf", safe_serialization=True)
    model.train()
    b, t = spec["batchSize"], spec["seqLen"]
    rows = torch.randint(0, spec["model"]["vocabSize"], (b, t + 1), dtype=torch.int64)
    # mask[r, j] weighs the target rows[r, j + 1]: a prompt prefix, an assistant span, padding.
    mask = torch.zeros(b, t, dtype=torch.int64)
    for r in range(b):
        start = 3 + 5 * r
        mask[r, start : t - 2 - r] = 1
        mask[r, 1] = 1  # a second, separate span
    labels = rows.clone()
    labels[:, 1:][mask == 0] = -100
    out = model(input_ids=rows, labels=labels)
    out.loss.backward()
    result = {"tokens": rows.to(torch.int32), "mask": mask.to(torch.float32), "loss": out.loss.detach().reshape(1)}
    for name, p in model.named_parameters():
        result[f"grad.{name}"] = p.grad.detach().clone()
    save_file({k: v.contiguous() for k, v in result.items()}, f"{out_dir}/sft.safetensors")


def generate(model_dir, spec_path, out_path):
    spec = json.load(open(spec_path))
    torch.set_num_threads(1)
    model = LlamaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    model.eval()
    model.generation_config.eos_token_id = None
    prompt = torch.tensor([spec["prompt"]], dtype=torch.int64)
    with torch.no_grad():
        ids = model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=spec["maxNewTokens"],
            do_sample=False,
            pad_token_id=0,
        )
    json.dump({"tokens": ids[0, prompt.shape[1] :].tolist()}, open(out_path, "w"))


def dpo(spec_path, out_dir):
    import copy

    from datasets import Dataset
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from trl import DPOConfig, DPOTrainer

    spec = json.load(open(spec_path))
    ref = random_model(spec)
    policy = copy.deepcopy(ref)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(spec["policyNoise"] * torch.randn_like(p))
    ref.save_pretrained(f"{out_dir}/ref", safe_serialization=True)
    policy.save_pretrained(f"{out_dir}/policy", safe_serialization=True)

    vocab = spec["model"]["vocabSize"]
    word = Tokenizer(models.WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t2"))
    word.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=word, eos_token="t1", pad_token="t0", unk_token="t2")

    def text(ids):
        return " ".join(f"t{i}" for i in ids)

    g = torch.Generator().manual_seed(spec["seed"] + 1)
    rows = []
    for i in range(spec["pairs"]):
        prompt = torch.randint(3, vocab, (3 + i,), generator=g).tolist()
        chosen = torch.randint(3, vocab, (4 + (i % 3),), generator=g).tolist() + [1]
        rejected = torch.randint(3, vocab, (2 + 2 * i,), generator=g).tolist() + [1]
        rows.append({"prompt": text(prompt), "chosen": " " + text(chosen), "rejected": " " + text(rejected)})
    args = DPOConfig(
        output_dir=f"{out_dir}/trl",
        beta=spec["beta"],
        per_device_train_batch_size=spec["pairs"],
        report_to="none",
        use_cpu=True,
        max_length=None,
        precompute_ref_log_probs=False,
        bf16=False,
        save_strategy="no",
    )
    trainer = DPOTrainer(
        model=policy, ref_model=ref, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer
    )
    inputs = trainer.data_collator([trainer.train_dataset[i] for i in range(spec["pairs"])])
    model = trainer.model
    model.train()
    model.zero_grad(set_to_none=True)
    loss = trainer.compute_loss(model, inputs)
    loss.backward()
    with torch.no_grad():
        ref_chosen, ref_rejected = trainer.compute_ref_log_probs(trainer.ref_model, inputs)
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items() if k.startswith("rewards/")}
    result = {
        "input_ids": inputs["input_ids"].to(torch.int32),
        "completion_mask": inputs["completion_mask"].to(torch.float32),
        "attention_mask": inputs["attention_mask"].to(torch.float32),
        "ref_chosen_logps": ref_chosen.detach().to(torch.float64),
        "ref_rejected_logps": ref_rejected.detach().to(torch.float64),
    }
    for name, p in model.named_parameters():
        result[f"grad.{name}"] = p.grad.detach().clone()
    save_file({k: v.contiguous() for k, v in result.items()}, f"{out_dir}/dpo.safetensors")
    json.dump({"loss": loss.item(), **metrics}, open(f"{out_dir}/dpo.json", "w"))


def shard(model_dir, out_dir):
    import numpy as np

    model = LlamaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    model.config.rms_norm_eps = float(np.float32(model.config.rms_norm_eps))
    model.save_pretrained(out_dir, safe_serialization=True, max_shard_size="40KB")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "reference" and len(sys.argv) == 4:
        reference(sys.argv[2], sys.argv[3])
    elif command == "logits" and len(sys.argv) == 5:
        logits(sys.argv[2], sys.argv[3], sys.argv[4])
    elif command == "sft" and len(sys.argv) == 4:
        sft(sys.argv[2], sys.argv[3])
    elif command == "generate" and len(sys.argv) == 5:
        generate(sys.argv[2], sys.argv[3], sys.argv[4])
    elif command == "dpo" and len(sys.argv) == 4:
        dpo(sys.argv[2], sys.argv[3])
    elif command == "shard" and len(sys.argv) == 4:
        shard(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
