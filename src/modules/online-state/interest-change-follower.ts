import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { WarningThrottle } from '../../common/logger';
import type { Logger } from '../../common/logger';
import { LOGGER } from '../../infra/tokens';
import { Metrics } from '../metrics/metrics.registry';
import { CHANGES_FOLLOW_WINDOW_MS, copyStaleAfterMs } from './online-state.schema';
import { INTEREST_CHANGE_FEED } from './online-state.store';
import type { InterestChangeFeed } from './online-state.store';

/** What a replica keeps per user and must drop when the user's interest changes. */
export interface InterestChangeListener {
  /** These users' interest versions moved: what was built from their history is stale. */
  changed(userIds: readonly string[]): void;
  /** Any user's may have (a clear, or changes the follower could not read). */
  reset(): void;
}

const PAGE = 500;

/**
 * Follows the `interest-changes` streams (one per user bucket) the ingest module writes with each
 * batch, every `RANK_POPULARITY_SYNC_MS`, and tells its listener which users' interests moved: a
 * replica can then keep users' interest vectors in memory and answer `rank` without a Redis round
 * trip, at most one sync interval staler than Redis. While it is not fresh (Redis unreachable,
 * sync failing), listeners must not answer from what they kept.
 */
@Injectable()
export class InterestChangeFollower implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger: Logger;
  private readonly staleAfterMs: number;
  private listener: InterestChangeListener | undefined;
  /** Id of the last entry read, per bucket; undefined until the first sync. */
  private cursors: string[] | undefined;
  private syncedAt = Number.NEGATIVE_INFINITY;
  private followableUntil = Number.NEGATIVE_INFINITY;
  private told = 0;
  private syncing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly warnings = new WarningThrottle();

  constructor(
    @Inject(INTEREST_CHANGE_FEED) private readonly feed: InterestChangeFeed,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    private readonly metrics: Metrics,
  ) {
    this.logger = logger.child({ component: 'interest-change-follower' });
    this.staleAfterMs = copyStaleAfterMs(config.ranking.popularitySyncMs);
  }

  /**
   * Follows for `listener` (one per replica) from the application's start on; false when following
   * is off (`RANK_POPULARITY_SYNC_MS=0`).
   */
  follow(listener: InterestChangeListener): boolean {
    if (this.config.ranking.popularitySyncMs === 0) return false;
    this.listener = listener;
    return true;
  }

  onApplicationBootstrap(): void {
    if (this.listener === undefined) return;
    this.metrics.gauge(
      'ranking_interest_changes_age_seconds',
      "Seconds since this replica last read the users' interest changes (its in-memory interest vectors are unused when stale)",
      () => (performance.now() - this.syncedAt) / 1000,
    );
    void this.sync();
    this.timer = setInterval(() => void this.sync(), this.config.ranking.popularitySyncMs);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  isFresh(now = performance.now()): boolean {
    return now - this.syncedAt <= this.staleAfterMs;
  }

  /**
   * Counts what the listener was told. A value built from state read before the count moved may
   * predate a change the listener was already told about; keep only what was read after.
   */
  get epoch(): number {
    return this.told;
  }

  /** Reads what changed since the last sync; concurrent callers share one run. */
  sync(): Promise<void> {
    this.syncing ??= this.step().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  private async step(): Promise<void> {
    const started = performance.now();
    try {
      if (this.cursors === undefined || started > this.followableUntil) {
        // Entries before the newest ones may be gone: start from these, forgetting everything.
        this.cursors = await this.feed.lastInterestChanges();
        this.tellReset();
      } else {
        const cursors = this.cursors;
        this.cursors = await Promise.all(
          cursors.map((cursor, bucket) => this.followBucket(bucket, cursor)),
        );
      }
      this.syncedAt = started;
      this.followableUntil = started + CHANGES_FOLLOW_WINDOW_MS;
    } catch (error) {
      if (this.warnings.allows()) {
        this.logger.warn(
          { err: error },
          "interest change sync failed; rank reads users' interest vectors from Redis meanwhile",
        );
      }
    }
  }

  /** Tells what bucket `bucket` holds after `from`; returns the id of the last entry read. */
  private async followBucket(bucket: number, from: string): Promise<string> {
    let after = from;
    for (;;) {
      const changes = await this.feed.interestChangesAfter(bucket, after, PAGE);
      for (const change of changes) {
        if (change.reset) this.tellReset();
        else if (change.userIds.length > 0) this.tellChanged(change.userIds);
        after = change.id;
      }
      if (changes.length < PAGE) return after;
    }
  }

  private tellReset(): void {
    this.told++;
    this.listener?.reset();
  }

  private tellChanged(userIds: readonly string[]): void {
    this.told++;
    this.listener?.changed(userIds);
  }
}
