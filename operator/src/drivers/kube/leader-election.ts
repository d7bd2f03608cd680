/**
 * Leader election on a coordination.k8s.io/v1 Lease, the protocol client-go uses:
 * - the holder renews `renewTime` every retry period; it gives up leadership when it cannot
 *   renew within the renew deadline (so it stops acting before anyone else may start);
 * - a candidate takes over once the record it observed has not changed for a full lease
 *   duration, measured on its own clock (no trust in other machines' clocks);
 * - every write carries the resourceVersion it read, so two candidates racing for an expired
 *   lease cannot both win: the loser gets 409 Conflict;
 * - on shutdown the holder releases the lease (empty holder, 1 s duration) for a fast handover.
 */
import { type V1Lease, V1MicroTime } from '@kubernetes/client-node';
import { apiStatus, describeError, type KubeClient } from './kube-client.js';
import type { Logger } from './logger.js';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStartedLeading: () => void | Promise<void>;
  onStoppedLeading: () => void | Promise<void>;
}

export class LeaderElector {
  private leader = false;
  private stopped = false;
  private lastRenewAt = 0;
  private observedRecord = '';
  private observedAt = 0;
  /** Holder seen by the last successful read; undefined when the read failed. */
  private observedHolder: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;

  constructor(
    private readonly client: KubeClient,
    private readonly options: LeaderElectionOptions,
    private readonly logger: Logger,
  ) {
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
    if (!(this.leaseDurationMs > this.renewDeadlineMs && this.renewDeadlineMs > this.retryPeriodMs)) {
      throw new Error('leader election needs leaseDuration > renewDeadline > retryPeriod');
    }
  }

  get isLeader(): boolean {
    return this.leader;
  }

  start(): void {
    this.stopped = false;
    this.loop ??= this.run();
  }

  /** Stops campaigning; a leader stops its work first, then releases the lease. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.wake?.();
    await this.loop;
    this.loop = undefined;
    if (this.leader) {
      this.leader = false;
      await this.options.onStoppedLeading();
      await this.release();
    }
  }

  /** When the election loop last completed an attempt; a stale value means the loop is wedged. */
  lastAttemptAt = Date.now();

  private async run(): Promise<void> {
    while (!this.stopped) {
      const acquired = await this.tryAcquireOrRenew();
      this.lastAttemptAt = Date.now();
      if (this.stopped) break;
      const now = Date.now();
      if (acquired) {
        this.lastRenewAt = now;
        if (!this.leader) {
          this.leader = true;
          this.logger.info('became leader', { lease: this.leaseRef(), identity: this.options.identity });
          await this.options.onStartedLeading();
        }
      } else if (this.leader && (this.heldByOther() || now - this.lastRenewAt >= this.renewDeadlineMs)) {
        this.leader = false;
        this.logger.warn('lost leadership', {
          lease: this.leaseRef(),
          reason: this.heldByOther()
            ? `the lease is held by ${this.observedHolder}`
            : 'could not renew within the renew deadline',
        });
        await this.options.onStoppedLeading();
      }
      await this.sleep(this.retryPeriodMs);
    }
  }

  /** One attempt; true when this candidate holds the lease afterwards. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.options;
    const now = new V1MicroTime();
    const durationSeconds = Math.max(1, Math.ceil(this.leaseDurationMs / 1000));
    let lease: V1Lease;
    this.observedHolder = undefined;
    try {
      lease = await this.client.coordination.readNamespacedLease({ namespace, name });
    } catch (error) {
      if (apiStatus(error) !== 404) {
        this.logger.warn('could not read the lease', { lease: this.leaseRef(), error: describeError(error) });
        return false;
      }
      try {
        await this.client.coordination.createNamespacedLease({
          namespace,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds: durationSeconds,
              acquireTime: now,
              renewTime: now,
              leaseTransitions: 0,
            },
          },
        });
        return true;
      } catch (createError) {
        if (apiStatus(createError) !== 409)
          this.logger.warn('could not create the lease', {
            lease: this.leaseRef(),
            error: describeError(createError),
          });
        return false;
      }
    }

    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    this.observedHolder = holder;
    const record = `${holder}|${String(spec.renewTime ?? '')}|${spec.leaseDurationSeconds ?? ''}`;
    if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedAt = Date.now();
    }
    const heldByMe = holder === identity;
    const observedDurationMs = (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (!heldByMe && holder !== '' && Date.now() - this.observedAt < observedDurationMs) return false;

    const transitions = spec.leaseTransitions ?? 0;
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds: durationSeconds,
      acquireTime: heldByMe && spec.acquireTime !== undefined ? new V1MicroTime(spec.acquireTime) : now,
      renewTime: now,
      leaseTransitions: heldByMe ? transitions : transitions + 1,
    };
    try {
      // replace carries metadata.resourceVersion: a concurrent writer makes this a 409.
      await this.client.coordination.replaceNamespacedLease({ namespace, name, body: lease });
      if (!heldByMe)
        this.logger.info('acquired the lease', {
          lease: this.leaseRef(),
          previousHolder: holder,
          transitions: transitions + 1,
        });
      return true;
    } catch (error) {
      if (apiStatus(error) !== 409)
        this.logger.warn('could not update the lease', {
          lease: this.leaseRef(),
          error: describeError(error),
        });
      return false;
    }
  }

  private async release(): Promise<void> {
    const { namespace, name, identity } = this.options;
    try {
      const lease = await this.client.coordination.readNamespacedLease({ namespace, name });
      if (lease.spec?.holderIdentity !== identity) return;
      lease.spec = {
        ...lease.spec,
        holderIdentity: '',
        leaseDurationSeconds: 1,
        renewTime: new V1MicroTime(),
      };
      if (lease.spec.acquireTime !== undefined)
        lease.spec.acquireTime = new V1MicroTime(lease.spec.acquireTime);
      await this.client.coordination.replaceNamespacedLease({ namespace, name, body: lease });
      this.logger.info('released the lease', { lease: this.leaseRef() });
    } catch (error) {
      this.logger.warn('could not release the lease; the next leader waits for it to expire', {
        lease: this.leaseRef(),
        error: describeError(error),
      });
    }
  }

  private heldByOther(): boolean {
    return (
      this.observedHolder !== undefined &&
      this.observedHolder !== '' &&
      this.observedHolder !== this.options.identity
    );
  }

  private leaseRef(): string {
    return `${this.options.namespace}/${this.options.name}`;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(resolve, ms);
    });
  }
}
