/**
 * Where this worker process sits in a stage's data-parallel job. Kubernetes places the pods
 * (one Indexed Job, a pod per node: JOB_COMPLETION_INDEX), the operator renders the shape
 * (SMOLSTAGE_NUM_NODES, SMOLSTAGE_GPUS_PER_NODE, SMOLSTAGE_MASTER_ADDR/PORT: pod 0 under the
 * attempt's headless Service), and a pod runs one rank per GPU — its worker starts the others
 * (SMOLSTAGE_LOCAL_RANK) — or one rank on the cpu backend. Local mode runs `--ranks` cpu ranks
 * as one such pod (SMOLSTAGE_RANKS_PER_POD).
 */
import { BadConfigurationError } from '../api/failures.js';
import { RankEnv } from '../api/trainer-spec.js';

const DEFAULT_MASTER_PORT = 29500;
const DEFAULT_TIMEOUT_SECONDS = 300;

export interface RankPlacement {
  rank: number;
  worldSize: number;
  /** Ranks (processes) in this pod, and this process's index among them. */
  ranksPerPod: number;
  localRank: number;
  masterAddr: string;
  masterPort: number;
  /** Bound on the rendezvous and on every collective: a dead or hung peer fails every rank within it. */
  timeoutMs: number;
}

function whole(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min || value > max)
    throw new BadConfigurationError(`${name} must be a whole number in [${min}, ${max}], got '${raw}'`);
  return value;
}

/** A process alone: no peers (e.g. a dpo stage's frozen reference model). */
export const SINGLE_RANK: RankPlacement = {
  rank: 0,
  worldSize: 1,
  ranksPerPod: 1,
  localRank: 0,
  masterAddr: '127.0.0.1',
  masterPort: DEFAULT_MASTER_PORT,
  timeoutMs: DEFAULT_TIMEOUT_SECONDS * 1000,
};

export function placementFromEnv(env: NodeJS.ProcessEnv, backend: 'cpu' | 'cuda'): RankPlacement {
  const nodes = whole(env, RankEnv.numNodes, 1, 1, 100000);
  const gpus = whole(env, RankEnv.gpusPerNode, 0, 0, 64);
  const ranksPerPod = whole(env, RankEnv.ranksPerPod, backend === 'cuda' ? Math.max(1, gpus) : 1, 1, 1024);
  const podIndex = whole(env, RankEnv.podIndex, 0, 0, nodes - 1);
  const localRank = whole(env, RankEnv.localRank, 0, 0, ranksPerPod - 1);
  const masterAddr = env[RankEnv.masterAddr] ?? '';
  if (nodes > 1 && masterAddr === '')
    throw new BadConfigurationError(
      `SMOLSTAGE_MASTER_ADDR is not set but SMOLSTAGE_NUM_NODES is ${nodes}: the ranks need pod 0's address to meet`,
    );
  return {
    rank: podIndex * ranksPerPod + localRank,
    worldSize: nodes * ranksPerPod,
    ranksPerPod,
    localRank,
    masterAddr: masterAddr === '' ? '127.0.0.1' : masterAddr,
    masterPort: whole(env, RankEnv.masterPort, DEFAULT_MASTER_PORT, 1, 65535),
    timeoutMs: whole(env, RankEnv.collectiveTimeoutSeconds, DEFAULT_TIMEOUT_SECONDS, 1, 86400) * 1000,
  };
}

/**
 * The global batch split over the ranks: sequences per rank per step. Admission checks the same
 * divisibility (api/validate.ts); a worker handed a spec that does not divide refuses it.
 */
export function sequencesPerRank(
  batch: { globalBatchTokens: number; sequenceLength: number; microBatchSize: number },
  worldSize: number,
): number {
  const sequences = batch.globalBatchTokens / batch.sequenceLength;
  const perRank = sequences / worldSize;
  if (!Number.isInteger(perRank) || perRank % batch.microBatchSize !== 0)
    throw new BadConfigurationError(
      `the global batch of ${sequences} sequences (globalBatchTokens ${batch.globalBatchTokens} / sequenceLength ${batch.sequenceLength}) does not split into ${worldSize} ranks of whole micro-batches of ${batch.microBatchSize}`,
    );
  return perRank;
}
