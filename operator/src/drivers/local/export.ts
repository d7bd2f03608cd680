/**
 * The run's last step: a Hugging Face–loadable model directory (model.safetensors, config.json,
 * tokenizer.json) from a committed checkpoint. Reusable by any driver that has the checkpoint
 * on local disk and the trainer spec it was trained with. Written to a temporary directory and
 * renamed, so `outDir` is complete or absent; `export.json` records which checkpoint it holds.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { TrainerSpec } from '../../api/trainer-spec.js';

export interface ExportRequest {
  /** A committed checkpoint directory on local disk. */
  checkpointDir: string;
  /** The trainer spec of the stage that wrote the checkpoint (model, RoPE θ, optimizer). */
  spec: TrainerSpec;
  tokenizerPath: string;
  outDir: string;
}

const RECORD = 'export.json';

/** Exports unless `outDir` already holds this checkpoint; returns whether it wrote anything. */
export async function exportHuggingFace(r: ExportRequest): Promise<boolean> {
  if (existsSync(join(r.outDir, RECORD))) {
    const record = JSON.parse(await readFile(join(r.outDir, RECORD), 'utf8')) as { checkpoint?: string };
    if (record.checkpoint === r.checkpointDir) return false;
  }
  const { Trainer } = await import('@smolstage/trainer-native');
  const trainer = await Trainer.create({
    model: { ...r.spec.model, ropeTheta: r.spec.ropeTheta },
    optimizer: r.spec.optimizer,
    schedule: r.spec.schedule,
    seed: r.spec.seed,
    threads: r.spec.threads,
    backend: 'cpu',
  });
  const temp = `${r.outDir}.tmp-${process.pid}`;
  try {
    await rm(temp, { recursive: true, force: true });
    await mkdir(temp, { recursive: true });
    await trainer.loadState(r.checkpointDir);
    await trainer.exportHF(temp);
    await copyFile(r.tokenizerPath, join(temp, 'tokenizer.json'));
    await writeFile(
      join(temp, RECORD),
      `${JSON.stringify({ checkpoint: r.checkpointDir, run: r.spec.run.name, stage: r.spec.stage.name, exportedAt: new Date().toISOString() }, null, 2)}\n`,
    );
  } finally {
    trainer.dispose();
  }
  await mkdir(dirname(r.outDir), { recursive: true });
  await rm(r.outDir, { recursive: true, force: true });
  await rename(temp, r.outDir);
  return true;
}
