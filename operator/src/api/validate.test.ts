import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { aRun, aStage } from './test-builders.js';
import type { TrainingRun } from './types.js';
import { validateRun } from './validate.js';

const table: [string, TrainingRun, RegExp][] = [
  [
    'a stage named export (the export Job has that name)',
    aRun().withStages(aStage('a'), aStage('export')).build(),
    /\['export'\] holds reserved stage names \(the export Job is named after them\); rename the stage/,
  ],
  [
    'maxTokens below tokens',
    aRun()
      .withStages(
        aStage('a'),
        aStage('b')
          .tokens('40K')
          .promotion({ anyOf: [{ metric: 'eval.web.loss', below: 2 }], maxTokens: '20K' }),
      )
      .build(),
    /maxTokens 20K is below the stage's tokens 40K/,
  ],
  [
    'afterTokens at or past the cap',
    aRun()
      .withStages(
        aStage('a').promotion({ allOf: [{ metric: 'eval.web.loss', below: 2, afterTokens: '40K' }] }),
      )
      .build(),
    /can never count/,
  ],
  [
    'metric never measured',
    aRun()
      .withStages(aStage('a').promotion({ anyOf: [{ metric: 'eval.gsm8k.acc', atLeast: 0.3 }] }))
      .build(),
    /add a task named 'gsm8k'/,
  ],
  [
    'a group metric of a task never measured',
    aRun()
      .withStages(aStage('a').promotion({ anyOf: [{ metric: 'eval.passkey_len8192.acc', atLeast: 0.9 }] }))
      .build(),
    /'eval\.passkey_len8192\.acc' is never measured: add a task named 'passkey'/,
  ],
  [
    'held-out loss not measured',
    aRun()
      .withSpec((s) => {
        s.evaluation = { heldOutLoss: [] };
      })
      .withStages(
        aStage('a'),
        aStage('b').with({ adjust: [{ when: { metric: 'eval.math.loss', above: 2 }, scale: { math: 2 } }] }),
      )
      .build(),
    /add 'math' to spec.evaluation.heldOutLoss/,
  ],
  [
    'batch geometry',
    aRun()
      .withSpec((s) => {
        s.batch.globalBatchTokens = 1000;
      })
      .build(),
    /not a multiple of sequenceLength 256 × microBatchSize 4 × 1 devices/,
  ],
  [
    'sequence longer than the model supports',
    aRun()
      .withStages(aStage('a').with({ sequenceLength: 4096 }))
      .build(),
    /exceeds the model's maxPositionEmbeddings 2048/,
  ],
  [
    'startFrom a later stage',
    aRun()
      .withStages(aStage('a'), aStage('b').with({ startFrom: { stage: 'c' } }), aStage('c'))
      .build(),
    /must be a stage before b/,
  ],
  [
    'tokensBeforeEnd too large',
    aRun()
      .withStages(aStage('a'), aStage('b').with({ startFrom: { stage: 'a', tokensBeforeEnd: '40K' } }))
      .build(),
    /must be less than the tokens of a/,
  ],
  [
    'decay ends before it starts',
    aRun()
      .withStages(aStage('a'), aStage('b'))
      .withSpec((s) => {
        s.schedule = { decay: { startsAtStage: 'b', endsAtStage: 'a' } };
      })
      .build(),
    /comes before startsAtStage/,
  ],
  [
    'inconsistent explicit model',
    aRun()
      .withSpec((s) => {
        s.model = { preset: 'tiny', config: { numHeads: 3 } };
      })
      .build(),
    /not divisible by numHeads 3/,
  ],
  [
    'infeasible bounds',
    aRun()
      .withStages(aStage('a').with({ mixtureBounds: { max: 0.4 } }))
      .build(),
    /infeasible/,
  ],
  ['fractional tokens', aRun().withStages(aStage('a').tokens('1.5')).build(), /not a whole number of tokens/],
  [
    'run name too long for pod names',
    (() => {
      const r = aRun('r'.repeat(31)).build();
      return r;
    })(),
    /at most 30/,
  ],
  [
    'an sft stage without its own learning rate',
    aRun()
      .withStages(aStage('a'), aStage('b').with({ objective: 'sft' }))
      .build(),
    /stage b: an sft stage starts a fresh optimizer; set its optimizer.lr/,
  ],
  [
    'a stage optimizer on a pretraining stage',
    aRun()
      .withStages(aStage('a'), aStage('b').with({ optimizer: { lr: 1e-4 } }))
      .build(),
    /stage b: optimizer and schedule are for sft and dpo stages/,
  ],
  [
    'dpo settings on an sft stage',
    aRun()
      .withStages(
        aStage('a'),
        aStage('b').with({ objective: 'sft', optimizer: { lr: 1e-4 }, dpo: { beta: 0.5 } }),
      )
      .build(),
    /stage b: dpo settings need objective: dpo/,
  ],
  [
    'pretraining after post-training',
    aRun()
      .withStages(aStage('a').with({ objective: 'sft', optimizer: { lr: 1e-4 } }), aStage('b'))
      .build(),
    /\(b\) pretrains after the sft stage a; put the pretraining stages first/,
  ],
  [
    'the run decay on an sft stage',
    aRun()
      .withStages(aStage('a'), aStage('b').with({ objective: 'sft', optimizer: { lr: 1e-4 } }))
      .withSpec((s) => {
        s.schedule = { decay: { startsAtStage: 'b' } };
      })
      .build(),
    /decay.startsAtStage 'b' is an sft stage/,
  ],
  [
    'a reward metric on a stage that is not dpo',
    aRun()
      .withStages(
        aStage('a'),
        aStage('b')
          .with({ objective: 'sft', optimizer: { lr: 1e-4 } })
          .promotion({ anyOf: [{ metric: 'eval.rewards.accuracies', atLeast: 0.6 }] }),
      )
      .build(),
    /'eval.rewards.accuracies' is only measured by dpo stages/,
  ],
  [
    'held-out rewards without held-out preference pairs',
    aRun()
      .withStages(
        aStage('a'),
        aStage('b')
          .mixture({ code: 1 })
          .with({ objective: 'dpo', optimizer: { lr: 1e-6 } })
          .promotion({ anyOf: [{ metric: 'eval.rewards.accuracies', atLeast: 0.6 }] }),
      )
      .withSpec((s) => {
        s.evaluation = { heldOutLoss: ['web'] };
      })
      .build(),
    /'eval.rewards.accuracies' is measured on held-out preference pairs: add code to spec.evaluation.heldOutLoss/,
  ],
  [
    'stage shorter than one step',
    aRun().withStages(aStage('a').tokens(100)).build(),
    /less than one optimizer step/,
  ],
];

describe('validateRun', () => {
  it('accepts the default builder run', () => assert.deepEqual(validateRun(aRun().build()), []));
  it('accepts pretraining → sft → dpo with a reward-gated promotion', () => {
    const run = aRun()
      .withSpec((s) => {
        s.evaluation = { heldOutLoss: ['code'] };
      })
      .withStages(
        aStage('a'),
        aStage('b').with({ objective: 'sft', optimizer: { lr: 1e-4 } }),
        aStage('c')
          .with({ objective: 'dpo', optimizer: { lr: 1e-6 }, dpo: { beta: 0.5 } })
          .promotion({ anyOf: [{ metric: 'eval.rewards.accuracies', atLeast: 0.6 }] }),
      )
      .build();
    assert.deepEqual(validateRun(run), []);
  });
  it('accepts a condition on a group of a declared task (eval.<task>_<group>.acc)', () => {
    const run = aRun()
      .withStages(aStage('a').promotion({ allOf: [{ metric: 'eval.arc_len8192.acc', atLeast: 0.9 }] }))
      .build();
    assert.deepEqual(validateRun(run), []);
  });
  for (const [name, run, message] of table) {
    it(`rejects: ${name}`, () => {
      const problems = validateRun(run);
      assert.ok(
        problems.some((p) => message.test(p)),
        problems.join('\n') || '(no problems)',
      );
    });
  }
});
