import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { Counter } from 'prom-client';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import type { Logger } from '../../common/logger';
import { LOGGER } from '../../infra/tokens';
import { Metrics } from '../metrics/metrics.registry';
import {
  ItemPopularity,
  popularityAt,
  POPULARITY_CHANGES_RETENTION_MS,
  StoredPopularity,
} from './online-state.schema';
import { POPULARITY_FEED } from './online-state.store';
import type { PopularityFeed } from './online-state.store';

/** Told of every value the copy takes in; `reload` after the copy was replaced as a whole. */
export interface PopularityListener {
  changed(itemId: string, stored: StoredPopularity): void;
  reloaded(values: ReadonlyMap<string, StoredPopularity>): void;
}

const PAGE = 200;
/**
 * A follower that has not synced for this long may have missed entries Redis trimmed since:
 * it reloads everything instead.
 */
const RELOAD_AFTER_MS = POPULARITY_CHANGES_RETENTION_MS / 2;
const WARN_INTERVAL_MS = 10_000;

/**
 * This replica's copy of every item's popularity, kept current by following the `pop-changes`
 * stream the ingest module writes with each batch (every `RANK_POPULARITY_SYNC_MS`). A `rank`
 * then reads its candidates' popularity from memory (the serving module's item table keeps it by
 * row, told of changes through `subscribe`) instead of an MGET:
 * that MGET cost the API ~100 µs and Redis ~120 µs of CPU per request, which would cap a whole
 * fleet at what one Redis core can serve. While the copy is stale (Redis unreachable, sync
 * failing) callers read per request as before, with the PostgreSQL fallback.
 */
@Injectable()
export class PopularityMirror implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger: Logger;
  private readonly reloads: Counter;
  private values = new Map<string, StoredPopularity>();
  /** Id of the last applied entry; undefined until the first load. */
  private lastId: string | undefined;
  private syncedAt = Number.NEGATIVE_INFINITY;
  private syncing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastWarned = 0;
  private listener: PopularityListener | undefined;
  private readonly staleAfterMs: number;

  constructor(
    @Inject(POPULARITY_FEED) private readonly feed: PopularityFeed,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    metrics: Metrics,
  ) {
    this.logger = logger.child({ component: 'popularity-mirror' });
    this.staleAfterMs = Math.max(2000, 8 * config.ranking.popularitySyncMs);
    this.reloads = metrics.counter(
      'ranking_popularity_mirror_reloads_total',
      'Full reloads of the replica popularity copy (start, reset after a rebuild, or a gap)',
    );
    if (config.ranking.popularitySyncMs > 0) {
      metrics.gauge(
        'ranking_popularity_mirror_age_seconds',
        'Seconds since the replica popularity copy last synced (requests read Redis when it is stale)',
        () => (performance.now() - this.syncedAt) / 1000,
      );
    }
  }

  onApplicationBootstrap(): void {
    const intervalMs = this.config.ranking.popularitySyncMs;
    if (intervalMs === 0) return;
    void this.sync();
    this.timer = setInterval(() => void this.sync(), intervalMs);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  /** Whether the copy synced recently enough to answer instead of Redis. */
  isFresh(now = performance.now()): boolean {
    return now - this.syncedAt <= this.staleAfterMs;
  }

  /** Applies what changed since the last sync; concurrent callers share one run. */
  sync(): Promise<void> {
    this.syncing ??= this.step().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  /** One item's decayed popularity at `nowMs` (undefined: no engagement yet). */
  get(itemId: string, nowMs: number): ItemPopularity | undefined {
    const stored = this.values.get(itemId);
    return stored === undefined
      ? undefined
      : popularityAt(stored, nowMs, this.config.online.popularityHalfLifeMs);
  }

  /** Sends every later change to `listener` (one: the serving module's item table). */
  subscribe(listener: PopularityListener): void {
    this.listener = listener;
    listener.reloaded(this.values);
  }

  private async step(): Promise<void> {
    const started = performance.now();
    try {
      if (this.lastId === undefined || started - this.syncedAt > RELOAD_AFTER_MS) {
        await this.reload();
      } else {
        await this.followFrom(this.lastId);
      }
      this.syncedAt = started;
    } catch (error) {
      const now = Date.now();
      if (now - this.lastWarned >= WARN_INTERVAL_MS) {
        this.lastWarned = now;
        this.logger.warn({ err: error }, 'popularity sync failed; requests read Redis meanwhile');
      }
    }
  }

  private async followFrom(from: string): Promise<void> {
    let after = from;
    for (;;) {
      const changes = await this.feed.popularityChangesAfter(after, PAGE);
      for (const change of changes) {
        if (change.reset) {
          await this.reload();
          return;
        }
        for (const [itemId, stored] of change.items) this.set(itemId, stored);
        after = change.id;
        this.lastId = after;
      }
      if (changes.length < PAGE) return;
    }
  }

  /** Reads every item's value; entries written meanwhile are applied again by the next follow. */
  private async reload(): Promise<void> {
    const lastId = await this.feed.lastPopularityChange();
    const values = new Map<string, StoredPopularity>();
    for await (const page of this.feed.allPopularity()) {
      for (const [itemId, stored] of page) values.set(itemId, stored);
    }
    this.values = values;
    this.lastId = lastId;
    this.listener?.reloaded(values);
    this.reloads.inc();
    this.logger.info({ items: values.size }, 'popularity copy loaded');
  }

  private set(itemId: string, stored: StoredPopularity): void {
    this.values.set(itemId, stored);
    this.listener?.changed(itemId, stored);
  }
}
