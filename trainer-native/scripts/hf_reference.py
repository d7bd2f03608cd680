"""Hugging Face transformers reference for the trainer-native parity tests (PyTorch CPU, fp32).

  hf_reference.py reference SPEC.json OUT_DIR
      Builds a random LlamaForCausalLM from the spec, saves it with save_pretrained (OUT_DIR/hf),
      and writes OUT_DIR/reference.safetensors: the token batches, logits and loss of the first
      batch, every gradient, then per-step loss / grad norm and the weights after `steps` AdamW
      steps with clip_grad_norm_.
  hf_reference.py logits MODEL_DIR TOKENS.safetensors OUT.safetensors
      Loads MODEL_DIR with from_pretrained and writes the logits of the `inputs` tensor.
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


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "reference" and len(sys.argv) == 4:
        reference(sys.argv[2], sys.argv[3])
    elif command == "logits" and len(sys.argv) == 5:
        logits(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
