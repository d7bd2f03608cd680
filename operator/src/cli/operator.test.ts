import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDuration, parseOperatorArgs, UsageError } from './operator.js';

describe('smolstage operator flags', () => {
  it('has defaults for an in-cluster, all-namespaces replica without leader election', () => {
    const options = parseOperatorArgs([], { POD_NAME: 'op-0' });
    assert.equal(options.namespace, undefined);
    assert.equal(options.identity, 'op-0');
    assert.equal(options.leaderElection, undefined);
    assert.equal(options.pollIntervalMs, 30_000);
    assert.equal(options.metricsPort, 8080);
    assert.equal(options.healthPort, 8081);
  });

  it('puts the Lease in the pod namespace unless told otherwise', () => {
    const env = { POD_NAMESPACE: 'smolstage-system' };
    assert.equal(parseOperatorArgs(['--leader-elect'], env).leaderElection?.namespace, 'smolstage-system');
    assert.equal(
      parseOperatorArgs(['--leader-elect', '--lease-namespace', 'ops'], env).leaderElection?.namespace,
      'ops',
    );
    assert.equal(
      parseOperatorArgs(['--leader-elect', '--namespace', 'team'], {}).leaderElection?.namespace,
      'team',
    );
    assert.deepEqual(
      parseOperatorArgs(
        ['--leader-elect', '--lease-duration', '3s', '--renew-deadline', '2s', '--retry-period', '200ms'],
        {},
      ).leaderElection,
      {
        name: 'smolstage-operator',
        namespace: 'default',
        leaseDurationMs: 3000,
        renewDeadlineMs: 2000,
        retryPeriodMs: 200,
      },
    );
  });

  const rejected: [string[], RegExp][] = [
    [['--poll-interval', '30'], /--poll-interval '30' is not a duration/],
    [['--poll-interval', '0s'], /greater than zero/],
    [['--namespace', 'Team_A'], /--namespace 'Team_A' is not a valid name/],
    [['--metrics-port', '70000'], /not a port number/],
    [['--workers', '0'], /--workers '0' must be an integer from 1 to 64/],
    [['--log-level', 'verbose'], /--log-level 'verbose'/],
    [
      ['--leader-elect', '--lease-duration', '2s', '--renew-deadline', '5s'],
      /--lease-duration > --renew-deadline > --retry-period/,
    ],
    [['--no-such-flag'], /Unknown option '--no-such-flag'/],
    [['positional'], /positional/],
  ];
  for (const [argv, message] of rejected) {
    it(`rejects ${argv.join(' ')} with a message naming the problem`, () => {
      assert.throws(
        () => parseOperatorArgs(argv, {}),
        (error: unknown) => error instanceof UsageError && message.test(error.message),
      );
    });
  }

  it('parses durations with units', () => {
    assert.equal(parseDuration('x', '500ms'), 500);
    assert.equal(parseDuration('x', '1.5s'), 1500);
    assert.equal(parseDuration('x', '5m'), 300_000);
  });
});
