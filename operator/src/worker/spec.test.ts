import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TRAINER_SPEC_VERSION, type TrainerSpec } from '../api/trainer-spec.js';
import { validateTrainerSpec } from './spec.js';

function validSpec(): TrainerSpec {
  return {
    apiVersion: TRAINER_SPEC_VERSION,
    run: { namespace: 'default', name: 'tiny' },
    stage: { name: 'stage1', index: 0, attempt: 0 },
    model: {
      hiddenSize: 64,
      numLayers: 2,
      numHeads: 4,
      numKvHeads: 2,
      intermediateSize: 128,
      vocabSize: 512,
      ropeTheta: 10000,
      rmsNormEps: 1e-5,
      tieEmbeddings: true,
      maxPositionEmbeddings: 256,
      initializerRange: 0.02,
    },
    objective: 'pretrain',
    storage: {
      kind: 's3',
      endpoint: 'http://127.0.0.1:9000',
      bucket: 'smolstage',
      region: 'us-east-1',
      prefix: 'runs',
    },
    datasets: { web: { uri: 's3://data/web/' }, code: { uri: '/data/code' } },
    mixture: { web: 0.75, code: 0.25 },
    batch: { sequenceLength: 32, globalBatchTokens: 256, microBatchSize: 4 },
    ropeTheta: 10000,
    optimizer: { betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.01, gradClip: 1 },
    schedule: {
      peakLr: 1e-3,
      startStep: 0,
      warmupSteps: 2,
      decayStartStep: null,
      decaySteps: 0,
      shape: 'linear',
      minLr: 0,
    },
    budget: { startTokens: 0, stopAtTokens: 2560 },
    resumeFrom: null,
    checkpoint: { everySteps: 5, keepLast: 2 },
    evaluation: { everySteps: 5, heldOutLoss: ['web'], heldOutSequences: 4, tasks: [] },
    lossGuard: { spikeFactor: 3, window: 5, maxRewinds: 2 },
    seed: 1,
    threads: 1,
    backend: 'cpu',
  };
}

// biome-ignore lint/suspicious/noExplicitAny: the table edits arbitrary, deliberately wrong fields
type Loose = Record<string, any>;

/** A copy of the valid spec with `edit` applied. */
function edited(edit: (s: Loose) => void): unknown {
  const spec = structuredClone(validSpec()) as unknown as Loose;
  edit(spec);
  return spec;
}

describe('validateTrainerSpec', () => {
  it('accepts a complete spec, with local storage and with resumeFrom', () => {
    assert.deepEqual(validateTrainerSpec(validSpec()), { ok: true, spec: validSpec() });
    const local = edited((s) => {
      s.storage = { kind: 'local', path: '/tmp/runs', prefix: '' };
      s.resumeFrom = 'checkpoints/stage1/step-000001000';
    });
    assert.equal(validateTrainerSpec(local).ok, true);
  });

  const table: [string, (s: Loose) => void, RegExp][] = [
    [
      'not a spec version',
      (s) => {
        s.apiVersion = 'v0';
      },
      /apiVersion: Unsupported value: "v0": supported values: "smolstage\.dev\/trainer-spec\/v1"/,
    ],
    [
      'missing model',
      (s) => {
        delete s.model;
      },
      /model: Required value/,
    ],
    [
      'missing batch field',
      (s) => {
        delete s.batch.sequenceLength;
      },
      /batch\.sequenceLength: Required value/,
    ],
    [
      'unknown dataset in mixture',
      (s) => {
        s.mixture = { web: 0.5, math: 0.5 };
      },
      /mixture names unknown dataset 'math' \(declared: web, code\)/,
    ],
    [
      'unknown held-out dataset',
      (s) => {
        s.evaluation.heldOutLoss = ['wiki'];
      },
      /heldOutLoss names unknown dataset 'wiki'/,
    ],
    [
      'weights not normalized',
      (s) => {
        s.mixture = { web: 0.5, code: 0.25 };
      },
      /sum to 1/,
    ],
    [
      'zero weight',
      (s) => {
        s.mixture = { web: 1, code: 0 };
      },
      /mixture\.code: Invalid value: 0: mixture\.code in body should be greater than 0/,
    ],
    [
      'run name that is no DNS label',
      (s) => {
        s.run.name = 'Tiny_Run';
      },
      /run\.name: Invalid value: "Tiny_Run": run\.name in body should match/,
    ],
    [
      'stage name with a slash',
      (s) => {
        s.stage.name = 'a/b';
      },
      /stage\.name: Invalid value: "a\/b"/,
    ],
    [
      'prefix escaping the bucket',
      (s) => {
        s.storage.prefix = '../other';
      },
      /storage\.prefix: .*invalid segment '\.\.'/,
    ],
    [
      's3 without a bucket',
      (s) => {
        delete s.storage.bucket;
      },
      /storage\.bucket: Required value \(storage\.kind is s3\)/,
    ],
    [
      'endpoint with a path',
      (s) => {
        s.storage.endpoint = 'http://minio:9000/bucket';
      },
      /storage\.endpoint: Invalid value: "http:\/\/minio:9000\/bucket"/,
    ],
    [
      'unknown storage kind',
      (s) => {
        s.storage.kind = 'gcs';
      },
      /storage\.kind: Unsupported value: "gcs": supported values: "s3", "local"/,
    ],
    [
      'batch not a multiple of the sequence',
      (s) => {
        s.batch.globalBatchTokens = 250;
      },
      /multiple of batch\.sequenceLength/,
    ],
    [
      'micro batch not dividing the batch',
      (s) => {
        s.batch.microBatchSize = 3;
      },
      /multiple of batch\.microBatchSize 3/,
    ],
    [
      'sequence longer than the model allows',
      (s) => {
        s.batch.sequenceLength = 512;
        s.batch.globalBatchTokens = 2048;
      },
      /exceeds model\.maxPositionEmbeddings/,
    ],
    [
      'heads not dividing hidden',
      (s) => {
        s.model.numHeads = 5;
      },
      /hiddenSize 64 must be divisible by model\.numHeads 5/,
    ],
    [
      'budget ending before it starts',
      (s) => {
        s.budget.startTokens = 5000;
      },
      /stopAtTokens 2560 must be greater than budget\.startTokens 5000/,
    ],
    [
      'resumeFrom that is no checkpoint',
      (s) => {
        s.resumeFrom = '../etc';
      },
      /resumeFrom '\.\.\/etc' must be a checkpoint directory/,
    ],
    [
      'spike factor ≤ 1',
      (s) => {
        s.lossGuard.spikeFactor = 1;
      },
      /lossGuard\.spikeFactor: Invalid value: 1: .* should be greater than 1/,
    ],
    [
      'fractional steps',
      (s) => {
        s.checkpoint.everySteps = 2.5;
      },
      /checkpoint\.everySteps: .* must be of type integer/,
    ],
    [
      'betas out of range',
      (s) => {
        s.optimizer.betas = [0.9, 1.2];
      },
      /optimizer\.betas\[1\]: Invalid value: 1\.2: .* should be less than 1/,
    ],
    [
      'bad task name',
      (s) => {
        s.evaluation.tasks = [{ name: 'ARC Easy', uri: 'x' }];
      },
      /tasks\[0\]\.name: Invalid value: "ARC Easy"/,
    ],
    [
      'unknown backend',
      (s) => {
        s.backend = 'tpu';
      },
      /backend: Unsupported value: "tpu": supported values: "cpu", "cuda"/,
    ],
  ];
  for (const [name, edit, expected] of table) {
    it(`rejects ${name}`, () => {
      const result = validateTrainerSpec(edited(edit));
      assert.equal(result.ok, false);
      if (!result.ok) {
        assert.match(result.problem, expected);
        assert.ok(!result.problem.includes('\n'), 'the reason is one line');
      }
    });
  }

  it('names at most three problems and counts the rest', () => {
    const result = validateTrainerSpec({ apiVersion: TRAINER_SPEC_VERSION });
    assert.equal(result.ok, false);
    if (!result.ok)
      assert.match(result.problem, /^invalid trainer spec: run: Required value; .*; .* \(and \d+ more\)$/);
  });

  it('rejects a non-object', () => {
    assert.deepEqual(validateTrainerSpec([]), {
      ok: false,
      problem: 'the trainer spec must be a JSON object',
    });
  });
});
