/**
 * Worker-thread entry for `prepare`: loads the tokenizer once, then tokenizes the units the
 * main thread sends, reporting progress and each finished unit's record.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { DataInputError } from '../api/failures.js';
import { LocalStore } from '../storage/local-store.js';
import type { WorkUnit } from './inputs.js';
import { tokenizeUnit, type UnitIdentity } from './tokenize-unit.js';
import { tokenizerFromJson } from './tokenizer.js';

export interface WorkerSetup {
  tokenizerJson: string;
  tokenizerWhere: string;
  eosToken: string;
  stagingDir: string;
}

export interface UnitTask {
  unit: WorkUnit;
  identity: UnitIdentity;
  name: string;
}

export type WorkerMessage =
  | { type: 'progress'; bytes: number; tokens: number }
  | { type: 'done'; record: Awaited<ReturnType<typeof tokenizeUnit>> }
  | { type: 'failed'; message: string; userError: boolean };

const port = parentPort;
if (port === null) throw new Error('prepare-worker must run as a worker thread');
const setup = workerData as WorkerSetup;
const tokenizer = tokenizerFromJson(setup.tokenizerJson, setup.tokenizerWhere, setup.eosToken);
const staging = new LocalStore(setup.stagingDir);
const post = (message: WorkerMessage) => port.postMessage(message);

port.on('message', async (task: UnitTask) => {
  try {
    const record = await tokenizeUnit(task.unit, task.identity, task.name, tokenizer, staging, (delta) =>
      post({ type: 'progress', ...delta }),
    );
    post({ type: 'done', record });
  } catch (error) {
    const userError = error instanceof DataInputError;
    post({
      type: 'failed',
      message: userError ? error.message : String((error as Error).stack ?? error),
      userError,
    });
  }
});
