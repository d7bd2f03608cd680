import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { conditionGroupProblem } from './tasks.js';

const passkey = { name: 'passkey', groups: ['depth0', 'depth50', 'len2048', 'len8192'] };
const arc = { name: 'arc', groups: [] };
const gate = (...metrics: string[]) => ({
  promotion: { allOf: metrics.map((metric) => ({ metric, atLeast: 0.9 })) },
});

describe('conditionGroupProblem', () => {
  const cases: [string, ReturnType<typeof gate> | { promotion?: undefined }, RegExp | null][] = [
    ['no promotion conditions', {}, null],
    ['a group the task carries', gate('eval.passkey_len8192.acc', 'eval.passkey_depth50.acc_norm'), null],
    ['a whole-task metric', gate('eval.passkey.acc', 'eval.arc.acc_norm'), null],
    ['a loss is not a task metric', gate('eval.code.loss'), null],
    [
      'a misspelt group',
      gate('eval.passkey.acc', 'eval.passkey_len8129.acc'),
      /eval\.passkey_len8129\.acc names group 'len8129', which no item of task passkey carries \(its groups: depth0, depth50, len2048, len8192\)/,
    ],
    ['a group of a task without groups', gate('eval.arc_easy.acc'), /task arc carries \(its groups: none\)/],
  ];
  for (const [name, spec, expected] of cases) {
    it(name, () => {
      const problem = conditionGroupProblem(spec, [passkey, arc]);
      if (expected === null) assert.equal(problem, null);
      else assert.match(problem ?? '', expected);
    });
  }
});
