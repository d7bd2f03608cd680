/**
 * Checkpoint → Hugging Face model directory (model.safetensors, config.json, tokenizer.json,
 * tokenizer_config.json, special_tokens_map.json, generation_config.json), with the native
 * trainer's own weight mapping. Only `smolstage export` calls it (in a Job, or
 * as a local-mode process), so there is one export implementation.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { TrainerSpec } from '../api/trainer-spec.js';
import { type ExportDtype, writeHfFiles } from './hf-files.js';

export interface ConvertRequest {
  /** A verified checkpoint directory on local disk. */
  checkpointDir: string;
  /** The trainer spec of the stage that wrote the checkpoint (model, RoPE θ, optimizer). */
  spec: TrainerSpec;
  tokenizerPath: string;
  /** The tokenizer_config.json beside the tokenizer (chat template, special tokens), if any. */
  tokenizerConfigPath?: string | null;
  /** Weights dtype in the export (default float32, the trainer's master weights). */
  dtype?: ExportDtype;
  /** An empty directory that receives the model files. */
  outDir: string;
}

export async function convertCheckpoint(r: ConvertRequest): Promise<void> {
  const { Trainer } = await import('@smolstage/trainer-native');
  const trainer = await Trainer.create({
    model: { ...r.spec.model, ropeTheta: r.spec.ropeTheta },
    optimizer: r.spec.optimizer,
    schedule: r.spec.schedule,
    seed: r.spec.seed,
    threads: r.spec.threads,
    backend: 'cpu',
  });
  try {
    await mkdir(r.outDir, { recursive: true });
    await trainer.loadState(r.checkpointDir);
    await trainer.exportHF(r.outDir);
    await copyFile(r.tokenizerPath, join(r.outDir, 'tokenizer.json'));
    await writeHfFiles({
      outDir: r.outDir,
      tokenizerPath: r.tokenizerPath,
      tokenizerConfigPath: r.tokenizerConfigPath ?? null,
      maxPositionEmbeddings: r.spec.model.maxPositionEmbeddings,
      dtype: r.dtype ?? 'float32',
    });
  } finally {
    trainer.dispose();
  }
}
