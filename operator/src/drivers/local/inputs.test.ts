/**
 * The quickstart's generated inputs in a work directory: the tokenizer's ChatML
 * tokenizer_config.json, the chat and preference datasets only for runs that read them, every
 * step skipped when its output is there, a tokenizer from before the chat tokens trained again;
 * and the input checks naming the prepare command of the kind of data each stage trains on.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadExample } from '../../api/test-builders.js';
import type { TrainingRun } from '../../api/types.js';
import { trainedTokenizerConfig } from '../../data/chat-template.js';
import { openDataset } from '../../data/dataset.js';
import { loadTokenizer } from '../../data/tokenizer.js';
import { checkInputsExist, ensureQuickstartData, localInputs, quickstartExamplesUsed } from './inputs.js';
import { RunFileError } from './run-file.js';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'smolstage-inputs-test-'));
});
after(() => rm(root, { recursive: true, force: true }));

const quickstartDir = (workDir: string) => join(workDir, 'buckets', 'smolstage', 'quickstart');

async function ensure(workDir: string, run: TrainingRun): Promise<string[]> {
  const said: string[] = [];
  await ensureQuickstartData(workDir, (line) => said.push(line), null, quickstartExamplesUsed(run));
  return said;
}

describe('quickstart inputs', () => {
  it('knows which runs read the chat and preference data', () => {
    assert.deepEqual(quickstartExamplesUsed(loadExample('quickstart.yaml')), []);
    assert.deepEqual(quickstartExamplesUsed(loadExample('quickstart-instruct.yaml')), ['chat', 'preference']);
    const run = loadExample('quickstart-instruct.yaml');
    delete run.spec.datasets.preference;
    (run.spec.datasets.chat as { uri: string }).uri = 's3://smolstage/quickstart/datasets/chat'; // no slash
    assert.deepEqual(quickstartExamplesUsed(run), ['chat']);
  });

  it('prepares the chat and preference datasets only for a run that reads them, then skips everything', async () => {
    const workDir = join(root, 'fresh');
    const data = quickstartDir(workDir);
    const pretrain = await ensure(workDir, loadExample('quickstart.yaml'));
    assert.ok(pretrain.some((l) => l.includes('training a 512-token')));
    assert.equal(await readFile(join(data, 'tokenizer_config.json'), 'utf8'), trainedTokenizerConfig());
    assert.equal(existsSync(join(data, 'datasets', 'chat')), false, 'a pretraining run gets no chat data');

    const instruct = loadExample('quickstart-instruct.yaml');
    const said = await ensure(workDir, instruct);
    assert.deepEqual(said, [
      'quickstart data: generating the arithmetic chat conversations and preference pairs',
      'quickstart data: rendering the chat data with the chat template into example shards',
      'quickstart data: rendering the preference data with the chat template into example shards',
    ]);
    const tokenizer = await loadTokenizer(join(data, 'tokenizer.json'));
    for (const [name, kind, examples] of [
      ['chat', 'chat', 2000],
      ['preference', 'preference', 1000],
    ] as const) {
      const dataset = await openDataset(join(data, 'datasets', name), {
        tokenizer: { hash: tokenizer.hash, where: 'quickstart tokenizer' },
      });
      dataset.close();
      assert.equal(dataset.manifest.kind, kind);
      assert.equal(dataset.manifest.examples?.sequenceLength, 128, 'the quickstart batch.sequenceLength');
      assert.equal(dataset.manifest.examples?.examples, examples);
      assert.equal(dataset.manifest.examples?.droppedTooLong, 0);
      assert.ok((dataset.manifest.splits.validation.documents ?? 0) > 0, `${name} has held-out examples`);
    }
    assert.deepEqual(await ensure(workDir, instruct), [], 'everything is there: nothing is redone');
    await checkInputsExist(instruct, localInputs(instruct, workDir));
  });

  it('trains a tokenizer from before the chat tokens again; the datasets are those of the new one', async () => {
    const workDir = join(root, 'stale');
    const data = quickstartDir(workDir);
    await ensure(workDir, loadExample('quickstart.yaml'));
    const path = join(data, 'tokenizer.json');
    // The old layout: <|endoftext|> alone, no ChatML turn markers.
    const json = JSON.parse(await readFile(path, 'utf8'));
    for (const added of json.added_tokens) if (added.id !== 0) added.content = `<|old-${added.id}|>`;
    for (const [token, id] of Object.entries(json.model.vocab as Record<string, number>)) {
      if (id === 1 || id === 2) {
        delete json.model.vocab[token];
        json.model.vocab[`<|old-${id}|>`] = id;
      }
    }
    await writeFile(path, JSON.stringify(json));
    assert.equal((await loadTokenizer(path)).tokenId('<|im_start|>'), undefined);

    const said = await ensure(workDir, loadExample('quickstart-instruct.yaml'));
    assert.match(said[0] ?? '', /predates the chat tokens .* training it again/);
    const tokenizer = await loadTokenizer(path);
    assert.equal(tokenizer.tokenId('<|im_start|>'), 1);
    assert.equal(tokenizer.tokenId('<|im_end|>'), 2);
    // Every dataset is one of the new tokenizer's (here the retrained tokenizer equals the one before
    // the edit, so the text datasets' manifests still match it and are kept; the chat data is new).
    for (const name of ['prose', 'code', 'math', 'chat', 'preference']) {
      const dataset = await openDataset(join(data, 'datasets', name), {
        tokenizer: { hash: tokenizer.hash, where: 'the retrained tokenizer' },
      });
      dataset.close();
    }
  });

  it('names the prepare command for the kind of data a stage trains on', async () => {
    const workDir = join(root, 'fresh');
    const run = loadExample('quickstart-instruct.yaml');
    (run.spec.datasets.chat as { uri: string }).uri = 's3://smolstage/quickstart/datasets/prose/';
    (run.spec.datasets.preference as { uri: string }).uri = 's3://smolstage/quickstart/datasets/pairs/';
    const inputs = localInputs(run, workDir);
    await assert.rejects(checkInputsExist(run, inputs), (error: Error) => {
      assert.ok(error instanceof RunFileError);
      const [wrongKind, missing] = error.message.split('\n');
      assert.match(
        wrongKind ?? '',
        /^dataset 'chat' \(s3:\/\/smolstage\/quickstart\/datasets\/prose\/\) holds text data, but stage sft \(objective sft\) trains on chat data; prepare it with `smolstage data prepare --format chat --seq-len 128 --tokenizer \S+tokenizer\.json --out \S+datasets\/prose <input files>`$/,
      );
      assert.match(
        missing ?? '',
        /^dataset 'preference' .* is not prepared: .*manifest\.json does not exist; prepare it with `smolstage data prepare --format preference --seq-len 128 --tokenizer /,
      );
      return true;
    });
  });
});
