/**
 * `smolstage export` end to end: a tiny real checkpoint made by `smolstage worker` (native
 * trainer) in the real S3 server, exported by the command as a child process, judged by what it
 * left under export/: files matching EXPORTED, a config.json and safetensors header with the
 * Hugging Face names, and transformers' from_pretrained giving our trainer's logits.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { before, describe, it } from 'node:test';
import { requirePython } from '../../../test/support/env.js';
import { ExitCode } from '../../src/api/failures.js';
import type { TrainerSpec } from '../../src/api/trainer-spec.js';
import { TOKENIZER_CONFIG_NAME, trainedTokenizerConfig } from '../../src/data/chat-template.js';
import { downloadCheckpoint } from '../../src/storage/checkpoints.js';
import { EXPORTED_FILE, readExportManifest } from '../../src/storage/exports.js';
import { checkpointDir } from '../../src/storage/layout.js';
import {
  prepareTinyData,
  runStore,
  type TinyData,
  tinySpec,
  WorkerProcess,
  writeSpec,
} from './worker-support.js';

let data: TinyData;
let scratch: string;
let counter = 0;

async function run(command: 'worker' | 'export', spec: TrainerSpec, env: NodeJS.ProcessEnv = {}) {
  const child = new WorkerProcess(
    await writeSpec(scratch, spec),
    await mkdtemp(join(scratch, 'work-')),
    env,
    command,
  );
  const { code } = await child.exited;
  return { code, child };
}

/** A finished 10-step stage (checkpoints at 5 and 10) in a fresh run. */
async function trainedRun(prefix: string): Promise<TrainerSpec> {
  counter++;
  const spec = tinySpec(data, `${prefix}-${Date.now().toString(36)}-${counter}`, {
    budget: { startTokens: 0, stopAtTokens: 10 * 128 },
  });
  const { code, child } = await run('worker', spec);
  assert.equal(code, ExitCode.Finished, child.stderr.join(''));
  return spec;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'smolstage-export-test-'));
  data = await prepareTinyData();
  // The run's tokenizer comes with its tokenizer_config.json (ChatML template, special tokens).
  await writeFile(join(dirname(data.tokenizerPath), TOKENIZER_CONFIG_NAME), trainedTokenizerConfig());
});

describe('smolstage export', () => {
  it('exports the final checkpoint: files match EXPORTED, HF names, same logits in transformers; a rerun keeps it', async () => {
    const spec = await trainedRun('export');
    const { code, child } = await run('export', spec);
    assert.equal(code, ExitCode.Finished, child.stderr.join(''));
    const store = runStore(spec);
    const manifest = await readExportManifest(store);
    assert.equal(
      manifest?.checkpoint,
      'checkpoints/stage1/step-000000010/',
      'the newest committed checkpoint',
    );
    const keys = (await store.list('export/')).map((o) => o.key).sort();
    assert.deepEqual(keys, [
      'export/EXPORTED',
      'export/config.json',
      'export/generation_config.json',
      'export/model.safetensors',
      'export/special_tokens_map.json',
      'export/tokenizer.json',
      'export/tokenizer_config.json',
    ]);
    for (const [name, digest] of Object.entries(manifest?.files ?? {})) {
      const body = await store.get(`export/${name}`);
      assert.deepEqual({ size: body.length, sha256: sha256(body) }, digest, name);
    }
    const config = JSON.parse((await store.get('export/config.json')).toString('utf8'));
    assert.equal(config.vocab_size, spec.model.vocabSize);
    assert.equal(config.num_hidden_layers, spec.model.numLayers);
    const weights = await store.get('export/model.safetensors');
    const header = JSON.parse(weights.subarray(8, 8 + Number(weights.readBigUInt64LE(0))).toString('utf8'));
    for (const name of [
      'model.embed_tokens.weight',
      'model.layers.0.self_attn.q_proj.weight',
      'model.layers.1.mlp.down_proj.weight',
      'model.norm.weight',
    ])
      assert.ok(name in header, `${name} in ${Object.keys(header).join(', ')}`);
    assert.deepEqual(await store.get('export/tokenizer.json'), await readFile(data.tokenizerPath));

    // transformers loads the export; its logits equal the native trainer's on the checkpoint.
    const local = await mkdtemp(join(scratch, 'hf-'));
    for (const key of keys) await store.getFile(key, join(local, key.slice('export/'.length)));
    const script = `
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
tok = AutoTokenizer.from_pretrained(sys.argv[1])
ids = tok("12+7=19")["input_ids"]
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], torch_dtype=torch.float32).eval()
with torch.no_grad():
    logits = model(torch.tensor([ids])).logits[0]
chat = [{"role": "user", "content": "What is 2 + 2?"}]
prompt = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
generator = pipeline("text-generation", model=sys.argv[1], tokenizer=sys.argv[1], device="cpu")
generated = generator(chat, max_new_tokens=4, do_sample=False)[0]["generated_text"]
print(json.dumps({"ids": ids, "logits": logits.flatten().tolist(), "prompt": prompt,
    "special": [tok.bos_token, tok.eos_token, tok.pad_token],
    "eos_ids": [model.config.eos_token_id, model.generation_config.eos_token_id, tok.eos_token_id],
    "turns": [m["role"] for m in generated]}))
`;
    const theirs = JSON.parse(
      execFileSync(requirePython(), ['-c', script, local], { encoding: 'utf8', maxBuffer: 64 << 20 }),
    ) as {
      ids: number[];
      logits: number[];
      prompt: string;
      special: string[];
      eos_ids: number[];
      turns: string[];
    };
    // AutoTokenizer renders ChatML and ends generation at <|im_end|>; the pipeline chats.
    assert.equal(theirs.prompt, '<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n');
    assert.deepEqual(theirs.special, ['<|im_start|>', '<|im_end|>', '<|im_end|>']);
    assert.deepEqual(theirs.eos_ids, [2, 2, 2]);
    assert.deepEqual(theirs.turns, ['user', 'assistant']);
    assert.ok(theirs.ids.length >= 3, `tokenized: ${theirs.ids}`);
    const checkpoint = await mkdtemp(join(scratch, 'ckpt-'));
    await downloadCheckpoint(store, { stage: 'stage1', step: 10 }, checkpoint);
    const { Trainer } = await import('@smolstage/trainer-native');
    const trainer = await Trainer.create({
      model: { ...spec.model, ropeTheta: spec.ropeTheta },
      optimizer: spec.optimizer,
      schedule: spec.schedule,
      seed: spec.seed,
      threads: 1,
      backend: 'cpu',
    });
    try {
      await trainer.loadState(checkpoint);
      const ours = await trainer.logits(Uint32Array.from(theirs.ids), {
        batchSize: 1,
        seqLen: theirs.ids.length,
      });
      assert.equal(ours.length, theirs.logits.length);
      let diff = 0;
      let norm = 0;
      for (let i = 0; i < ours.length; i++) {
        diff += ((ours[i] as number) - (theirs.logits[i] as number)) ** 2;
        norm += (theirs.logits[i] as number) ** 2;
      }
      assert.ok(Math.sqrt(diff / norm) < 1e-4, `logits relative error ${Math.sqrt(diff / norm)}`);
    } finally {
      trainer.dispose();
    }

    const again = await run('export', spec);
    assert.equal(again.code, ExitCode.Finished, again.child.stderr.join(''));
    assert.match(
      String(again.child.lastLog()?.reason),
      /already holds checkpoints\/stage1\/step-000000010\//,
    );
    assert.deepEqual(await readExportManifest(store), manifest, 'the complete export is kept');
  });

  it('bfloat16 export: the weights are torch bf16 rounding of the float32 export, and transformers loads them', async () => {
    const float = await trainedRun('f32');
    const bf16 = await trainedRun('bf16');
    assert.equal((await run('export', float)).code, ExitCode.Finished);
    const { code, child } = await run('export', bf16, { SMOLSTAGE_EXPORT_DTYPE: 'bfloat16' });
    assert.equal(code, ExitCode.Finished, child.stderr.join(''));
    const dirs: string[] = [];
    for (const spec of [float, bf16]) {
      const store = runStore(spec);
      const local = await mkdtemp(join(scratch, 'hf-'));
      for (const { key } of await store.list('export/'))
        await store.getFile(key, join(local, key.slice('export/'.length)));
      dirs.push(local);
    }
    const script = `
import json, sys, torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
f32, bf16 = load_file(sys.argv[1] + "/model.safetensors"), load_file(sys.argv[2] + "/model.safetensors")
assert f32.keys() == bf16.keys()
same = all(bf16[k].dtype == torch.bfloat16 and torch.equal(f32[k].to(torch.bfloat16), bf16[k]) for k in f32)
model = AutoModelForCausalLM.from_pretrained(sys.argv[2])
print(json.dumps({"same": same, "dtype": str(model.dtype), "tensors": len(f32)}))
`;
    const result = JSON.parse(
      execFileSync(requirePython(), ['-c', script, ...dirs], { encoding: 'utf8', maxBuffer: 16 << 20 }),
    ) as { same: boolean; dtype: string; tensors: number };
    assert.deepEqual(result, { same: true, dtype: 'torch.bfloat16', tensors: result.tensors });
    assert.ok(result.tensors > 5);
    const config = JSON.parse(await readFile(join(dirs[1] as string, 'config.json'), 'utf8'));
    assert.equal(config.torch_dtype, 'bfloat16');
  });

  it('exports the checkpoint resumeFrom names; a new checkpoint replaces an older export', async () => {
    const spec = await trainedRun('named');
    const older = { ...spec, resumeFrom: 'checkpoints/stage1/step-000000005' };
    assert.equal((await run('export', older)).code, ExitCode.Finished);
    const store = runStore(spec);
    assert.equal((await readExportManifest(store))?.checkpoint, 'checkpoints/stage1/step-000000005/');
    const first = await store.get('export/model.safetensors');
    assert.equal((await run('export', { ...spec, resumeFrom: 'checkpoints/stage1/step-000000010' })).code, 0);
    assert.equal((await readExportManifest(store))?.checkpoint, 'checkpoints/stage1/step-000000010/');
    assert.notDeepEqual(await store.get('export/model.safetensors'), first);
  });

  it('a damaged checkpoint → BadConfiguration naming it, and no EXPORTED', async () => {
    const spec = await trainedRun('damaged');
    const store = runStore(spec);
    await store.put(`${checkpointDir('stage1', 10)}model.safetensors`, Buffer.alloc(64));
    const { code, child } = await run('export', spec);
    assert.equal(code, ExitCode.BadConfiguration);
    assert.match(
      String(child.lastLog()?.reason),
      /checkpoints\/stage1\/step-000000010\/ is damaged: model\.safetensors has/,
    );
    assert.equal(await store.exists(`export/${EXPORTED_FILE}`), false);
  });

  it('bad input: no tokenizer, or a stage with no checkpoint → BadConfiguration with the fix', async () => {
    const spec = await trainedRun('inputs');
    const { tokenizer: _t, ...noTokenizer } = spec;
    const missing = await run('export', noTokenizer as TrainerSpec);
    assert.equal(missing.code, ExitCode.BadConfiguration);
    assert.match(String(missing.child.lastLog()?.reason), /export needs tokenizer\.uri/);
    const empty = await run('export', { ...spec, stage: { ...spec.stage, name: 'stage9' } });
    assert.equal(empty.code, ExitCode.BadConfiguration);
    assert.match(String(empty.child.lastLog()?.reason), /stage stage9 has no committed checkpoint/);
  });
});
