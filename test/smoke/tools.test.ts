/**
 * Proves the reference tools the harness pins are real and work here: helm at the pinned
 * version, PyTorch + transformers running a small Llama forward pass, and nvcc compiling CUDA
 * (to an object file: this machine has no GPU to run it).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { requireHelm, requireNvcc, requirePython } from '../support/env.js';
import { helmVersion, torchVersion, transformersVersion } from '../support/pins.js';

const run = promisify(execFile);

test('helm reports the pinned version', async () => {
  const { stdout } = await run(requireHelm(), ['version']);
  assert.match(stdout, new RegExp(`Version:"${helmVersion.replaceAll('.', '\\.')}"`));
});

const llamaForward = `
import json, math, torch, transformers
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(0)
config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                     tie_word_embeddings=True)
model = LlamaForCausalLM(config).eval()
ids = torch.randint(0, 64, (1, 8))
with torch.no_grad():
    out = model(input_ids=ids, labels=ids)
print(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__,
                  "logits": list(out.logits.shape), "loss": out.loss.item(), "uniform": math.log(64)}))
`;

test('python runs a tiny LlamaForCausalLM forward with the pinned torch and transformers', async () => {
  const { stdout } = await run(requirePython(), ['-c', llamaForward], { timeout: 120_000 });
  const result = JSON.parse(stdout);
  assert.equal(result.torch.split('+')[0], torchVersion);
  assert.equal(result.transformers, transformersVersion);
  assert.deepEqual(result.logits, [1, 8, 64]);
  // An untrained model is close to uniform over the vocabulary.
  assert.ok(Math.abs(result.loss - result.uniform) < 1, `loss ${result.loss} far from ln(64)`);
});

const cudaSource = `
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cublas_v2.h>
#include <cuda/std/cstdint>

__global__ void smolstage_smoke_axpy(float a, const float* x, float* y, cuda::std::int32_t n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + __bfloat162float(__float2bfloat16(y[i]));
}

cudaError_t smolstage_smoke_launch(float a, const float* x, float* y, int n) {
  smolstage_smoke_axpy<<<(n + 255) / 256, 256>>>(a, x, y, n);
  return cudaGetLastError();
}
`;

test('nvcc compiles a CUDA source (runtime, bf16, cuBLAS and CCCL headers) to an object', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'smolstage-nvcc-'));
  try {
    await writeFile(join(dir, 'smoke.cu'), cudaSource);
    await run(requireNvcc(), ['-c', '-arch=sm_90', 'smoke.cu', '-o', 'smoke.o'], {
      cwd: dir,
      timeout: 180_000,
    });
    const object = await readFile(join(dir, 'smoke.o'));
    assert.equal(object.subarray(0, 4).toString('latin1'), '\x7fELF');
    assert.ok(object.includes('smolstage_smoke_axpy'), 'the kernel is in the object');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
