/**
 * One process per GPU: a pod's worker starts its pod's ranks as child workers — local rank i
 * sees only GPU i (CUDA_VISIBLE_DEVICES), has its own scratch directory, and only local rank 0
 * serves /metrics — forwards SIGTERM/SIGINT to them, and exits with the code of the rank that
 * failed first (the others fail because it did), or theirs when all agree.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { RankEnv } from '../api/trainer-spec.js';
import type { RankPlacement } from './ranks.js';

export interface LaunchOptions {
  /** The worker's own arguments, without --work-dir and --metrics-port. */
  argv: string[];
  workDir: string;
  metricsPort: number;
  placement: RankPlacement;
  env: NodeJS.ProcessEnv;
  log: { info(message: string, meta?: Record<string, unknown>): void };
}

/** Scratch directory of local rank `localRank` under the pod's work directory. */
export const rankWorkDir = (workDir: string, localRank: number) => join(workDir, `rank-${localRank}`);

export async function launchLocalRanks(o: LaunchOptions): Promise<number> {
  const visible = o.env.CUDA_VISIBLE_DEVICES?.split(',').filter((d) => d !== '');
  const entry = process.argv[1] as string;
  const children = Array.from({ length: o.placement.ranksPerPod }, (_, localRank) =>
    spawn(
      process.execPath,
      [
        ...process.execArgv,
        entry,
        'worker',
        ...o.argv,
        '--work-dir',
        rankWorkDir(o.workDir, localRank),
        // `=`: a negative port (disabled) would read as an option of its own.
        `--metrics-port=${localRank === 0 ? o.metricsPort : -1}`,
      ],
      {
        stdio: 'inherit',
        env: {
          ...o.env,
          [RankEnv.localRank]: String(localRank),
          CUDA_VISIBLE_DEVICES: visible?.[localRank] ?? String(localRank),
        },
      },
    ),
  );
  o.log.info('started the pod’s ranks', {
    ranks: children.length,
    firstRank: o.placement.rank,
    worldSize: o.placement.worldSize,
  });
  const forward = (signal: NodeJS.Signals) => () => {
    for (const child of children) child.kill(signal);
  };
  const onTerm = forward('SIGTERM');
  const onInt = forward('SIGINT');
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  let firstFailure: number | null = null;
  try {
    const codes = await Promise.all(
      children.map(
        (child) =>
          new Promise<number>((resolve) =>
            child.on('exit', (code, signal) => {
              const exit = code ?? (signal === 'SIGKILL' ? 137 : 143);
              if (exit !== 0 && firstFailure === null) firstFailure = exit;
              resolve(exit);
            }),
          ),
      ),
    );
    return firstFailure ?? (codes[0] as number);
  } finally {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
  }
}
