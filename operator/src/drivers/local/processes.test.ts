import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jobAfterExit, type WorkerExit } from './processes.js';
import type { LocalJob } from './state.js';

const job: LocalJob = { name: 'r-s-a1', stage: 's', attempt: 1, phase: 'Running', startedAt: 't0' };
const NOW = 't1';

describe('jobAfterExit maps a worker exit like a Job podFailurePolicy', () => {
  const cases: [string, WorkerExit, boolean, Partial<LocalJob>, boolean][] = [
    [
      '0 finished → Succeeded',
      { code: 0, signal: null },
      false,
      { phase: 'Succeeded', finishedAt: NOW },
      false,
    ],
    [
      '3 stopped on request → Failed with code 3 (the core completes the stage)',
      { code: 3, signal: null, reason: 'stopped' },
      false,
      { phase: 'Failed', exitCode: 3, failureMessage: 'exit code 3: stopped' },
      false,
    ],
    [
      '4 preempted → still Running, a new worker takes over',
      { code: 4, signal: null },
      false,
      { phase: 'Running' },
      true,
    ],
    [
      '4 preempted while shutting down → still Running, no new worker',
      { code: 4, signal: null },
      true,
      { phase: 'Running' },
      false,
    ],
    [
      'killed by a signal while shutting down → still Running',
      { code: null, signal: 'SIGTERM' },
      true,
      { phase: 'Running' },
      false,
    ],
    [
      'killed by a signal otherwise → Failed without a code (retried)',
      { code: null, signal: 'SIGKILL' },
      false,
      { phase: 'Failed', failureMessage: 'killed by SIGKILL' },
      false,
    ],
    [
      '2 bad configuration → Failed with code 2',
      { code: 2, signal: null, reason: 'no dataset' },
      false,
      { phase: 'Failed', exitCode: 2, failureMessage: 'exit code 2: no dataset' },
      false,
    ],
    [
      '1 transient → Failed with code 1',
      { code: 1, signal: null },
      false,
      { phase: 'Failed', exitCode: 1, failureMessage: 'exit code 1' },
      false,
    ],
  ];
  for (const [name, exit, shuttingDown, expected, replace] of cases) {
    it(name, () => {
      const after = jobAfterExit(job, exit, shuttingDown, NOW);
      for (const [key, value] of Object.entries(expected))
        assert.deepEqual(after.job[key as keyof LocalJob], value, key);
      assert.equal(after.replace, replace);
      if (after.job.phase !== 'Failed') assert.equal(after.job.exitCode, undefined);
    });
  }

  it('leaves a suspended job suspended whatever the exit', () => {
    const suspended: LocalJob = { ...job, phase: 'Suspended', suspendedByRun: true };
    assert.deepEqual(jobAfterExit(suspended, { code: 4, signal: null }, false, NOW), {
      job: suspended,
      replace: false,
    });
  });
});
