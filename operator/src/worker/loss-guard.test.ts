import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { initialLossGuardState, type LossGuardState, observeLoss, stateAfterRewind } from './loss-guard.js';

const config = { spikeFactor: 2, window: 3, maxRewinds: 1 };

function feed(losses: number[], state: LossGuardState = initialLossGuardState()) {
  const actions: string[] = [];
  let s = state;
  losses.forEach((loss, i) => {
    const judged = observeLoss(s, loss, i + 1, config);
    actions.push(judged.verdict.action);
    s = judged.state;
  });
  return { actions, state: s };
}

describe('loss guard', () => {
  const table: [string, number[], string[]][] = [
    ['healthy losses continue', [5, 4.8, 4.7, 4.5], ['continue', 'continue', 'continue', 'continue']],
    ['NaN rewinds even before the window fills', [5, Number.NaN], ['continue', 'rewind']],
    ['infinity rewinds', [5, Number.POSITIVE_INFINITY], ['continue', 'rewind']],
    ['no spike judgement until the window is full', [1, 1, 5], ['continue', 'continue', 'continue']],
    [
      'a spike above factor × average rewinds',
      [1, 1, 1, 2.5],
      ['continue', 'continue', 'continue', 'rewind'],
    ],
    ['exactly factor × average is tolerated', [1, 1, 1, 2], ['continue', 'continue', 'continue', 'continue']],
    ['a second bad loss past maxRewinds fails', [1, Number.NaN, Number.NaN], ['continue', 'rewind', 'fail']],
  ];
  for (const [name, losses, expected] of table) {
    it(name, () => assert.deepEqual(feed(losses).actions, expected));
  }

  it('keeps bad losses out of the moving average', () => {
    const { state } = feed([1, 1, 1, 10]);
    assert.deepEqual(state.recent, [1, 1, 1]);
    assert.equal(state.rewinds, 1);
  });

  it('the moving average slides over the last window losses', () => {
    assert.deepEqual(feed([4, 3, 2, 1]).state.recent, [3, 2, 1]);
  });

  it('explains the failure', () => {
    const s = { recent: [1, 1, 1], rewinds: 1 };
    const judged = observeLoss(s, 9, 42, config);
    assert.equal(judged.verdict.action, 'fail');
    if (judged.verdict.action === 'fail') {
      assert.match(
        judged.verdict.reason,
        /loss 9\.0000 at step 42 exceeds 2 × the 3-step moving average 1\.0000; giving up after 1 rewinds/,
      );
    }
  });

  it('a rewind restores the old average but keeps the rewind count', () => {
    assert.deepEqual(stateAfterRewind({ recent: [3, 3], rewinds: 0 }, { recent: [1], rewinds: 2 }), {
      recent: [3, 3],
      rewinds: 2,
    });
  });
});
