import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { Counter } from 'prom-client';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { WarningThrottle } from '../../common/logger';
import type { Logger } from '../../common/logger';
import { LOGGER } from '../../infra/tokens';
import { Metrics } from '../metrics/metrics.registry';
import {
  CHANGES_FOLLOW_WINDOW_MS,
  copyStaleAfterMs,
  StoredPopularity,
} from './online-state.schema';
import { POPULARITY_FEED } from './online-state.store';
import type { PopularityFeed } from './online-state.store';

/**
 * Where the followed values are kept (the serving module's item table, by row). It keeps only the
 * items it holds, so the copy's memory is bounded by the catalog, not by every id in events.
 */
export interface PopularityKeeper {
  holds(itemId: string): boolean;
  /** Replaces every value (after a reload); items not in `values` have no engagement. */
  replaceAll(values: readonly (readonly [string, StoredPopularity])[]): void;
  /** A newer value of an item it holds. */
  set(itemId: string, stored: StoredPopularity): void;
}

const PAGE = 200;

/**
 * Keeps this replica's copy of its catalog items' popularity current, by following the
 * `pop-changes` stream the ingest module writes with each batch (every `RANK_POPULARITY_SYNC_MS`)
 * into a keeper. A `rank`
 * then reads its candidates' popularity from memory (the serving module's item table keeps it by
 * row, told of changes through `subscribe`) instead of an MGET:
 * that MGET cost the API ~100 µs and Redis ~120 µs of CPU per request, which would cap a whole
 * fleet at what one Redis core can serve. While the copy is stale (Redis unreachable, sync
 * failing) callers read Redis per request, and the stale copy when Redis does not answer.
 */
@Injectable()
export class PopularityMirror implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger: Logger;
  private readonly reloads: Counter;
  private keeper: PopularityKeeper | undefined;
  /** Id of the last applied entry; undefined until the first load. */
  private lastId: string | undefined;
  private syncedAt = Number.NEGATIVE_INFINITY;
  /** Until when following from `lastId` misses nothing (see CHANGES_FOLLOW_WINDOW_MS). */
  private followableUntil = Number.NEGATIVE_INFINITY;
  private syncing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly warnings = new WarningThrottle();
  private readonly staleAfterMs: number;

  constructor(
    @Inject(POPULARITY_FEED) private readonly feed: PopularityFeed,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    metrics: Metrics,
  ) {
    this.logger = logger.child({ component: 'popularity-mirror' });
    this.staleAfterMs = copyStaleAfterMs(config.ranking.popularitySyncMs);
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

  /** Whether the keeper holds a loaded copy, however old (none before the first load into it). */
  hasCopy(): boolean {
    return this.lastId !== undefined;
  }

  /** Applies what changed since the last sync; concurrent callers share one run. */
  sync(): Promise<void> {
    this.syncing ??= this.step().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  /** Where values go from now on; the next sync reloads everything into it. */
  keepIn(keeper: PopularityKeeper): void {
    this.keeper = keeper;
    this.lastId = undefined;
  }

  /**
   * Current values of items the keeper just started to hold (new catalog items), read directly:
   * the stream only carries changes. Undefined for items without engagement.
   */
  current(itemIds: readonly string[]): Promise<(StoredPopularity | undefined)[]> {
    return this.feed.popularityOf(itemIds);
  }

  private async step(): Promise<void> {
    if (this.keeper === undefined) return;
    const started = performance.now();
    try {
      if (this.lastId === undefined || started > this.followableUntil) {
        await this.reload();
      } else {
        await this.followFrom(this.lastId, started);
      }
      this.syncedAt = started;
    } catch (error) {
      if (this.warnings.allows()) {
        this.logger.warn({ err: error }, 'popularity sync failed; requests read Redis meanwhile');
      }
    }
  }

  /** Applies the entries after `from`, read from `started` on. */
  private async followFrom(from: string, started: number): Promise<void> {
    let after = from;
    for (;;) {
      const changes = await this.feed.popularityChangesAfter(after, PAGE);
      for (const change of changes) {
        if (change.reset) {
          await this.reload();
          return;
        }
        for (const [itemId, stored] of change.items) {
          if (this.keeper?.holds(itemId) === true) this.keeper.set(itemId, stored);
        }
        after = change.id;
        this.lastId = after;
      }
      if (changes.length < PAGE) break;
    }
    this.followableUntil = started + CHANGES_FOLLOW_WINDOW_MS;
  }

  /**
   * Reads every item's value; entries written meanwhile are applied again by the next follow. A
   * reload longer than the follow window would be followed by another, and so on for ever: it is
   * followed anyway, from what Redis still holds, and says what it may have missed.
   */
  private async reload(): Promise<void> {
    const started = performance.now();
    const lastId = await this.feed.lastPopularityChange();
    const kept: (readonly [string, StoredPopularity])[] = [];
    for await (const page of this.feed.allPopularity()) {
      for (const entry of page) if (this.keeper?.holds(entry[0]) === true) kept.push(entry);
    }
    this.keeper?.replaceAll(kept);
    this.lastId = lastId;
    const finished = performance.now();
    const overran = finished - started > CHANGES_FOLLOW_WINDOW_MS;
    this.followableUntil = (overran ? finished : started) + CHANGES_FOLLOW_WINDOW_MS;
    this.reloads.inc();
    const ms = Math.round(finished - started);
    if (overran) {
      this.logger.warn(
        { items: kept.length, ms, followWindowMs: CHANGES_FOLLOW_WINDOW_MS },
        'popularity copy loaded more slowly than the change stream is kept: items that changed while it loaded may be stale until their next change',
      );
    } else {
      this.logger.info({ items: kept.length, ms }, 'popularity copy loaded');
    }
  }
}
