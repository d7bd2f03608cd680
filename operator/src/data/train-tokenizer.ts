/**
 * `smolstage data train-tokenizer`: gathers the text of any supported inputs (so a JSON Lines
 * or parquet corpus trains on its text field, not on its JSON syntax) and trains a byte-level
 * BPE on it.
 */

import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataInputError } from '../api/failures.js';
import { planUnits, readDocuments } from './inputs.js';
import { resolveInputs } from './prepare.js';
import { trainByteLevelBpe } from './tokenizer.js';

export interface TrainTokenizerOptions {
  inputs: string[];
  vocabSize: number;
  textField?: string;
  env?: NodeJS.ProcessEnv;
}

/** Returns the tokenizer.json text. */
export async function trainTokenizerOnInputs(options: TrainTokenizerOptions): Promise<string> {
  const textField = options.textField ?? 'text';
  const scratch = await mkdtemp(join(tmpdir(), 'smolstage-tokenizer-'));
  try {
    const corpus = join(scratch, 'corpus.txt');
    const out = createWriteStream(corpus);
    let documents = 0;
    for (const input of await resolveInputs(
      options.inputs,
      join(scratch, 'downloads'),
      options.env ?? process.env,
    )) {
      for (const unit of await planUnits(input.localPath, {
        chunkBytes: Number.MAX_SAFE_INTEGER,
        textField,
      })) {
        for await (const text of readDocuments(
          unit,
          textField,
          () => {},
          () => {},
        )) {
          documents++;
          if (!out.write(`${text}\n`)) await once(out, 'drain');
        }
      }
    }
    out.end();
    await once(out, 'finish');
    if (documents === 0)
      throw new DataInputError(
        `the inputs (${options.inputs.join(', ')}) hold no non-empty documents to train on`,
      );
    return await trainByteLevelBpe([corpus], options.vocabSize);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
