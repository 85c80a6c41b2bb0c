import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import type { Logger } from '../../common/logger';
import { LOGGER } from '../../infra/tokens';
import {
  decayed,
  POPULARITY_CHANGES_RETENTION_MS,
  popularityAt,
  StoredPopularity,
} from '../ingest/online-state.keys';
import { Metrics } from '../metrics/metrics.registry';
import type { ItemPopularity } from './profile';
import type { ModelCatalog } from './serving-model';

/** One `pop-changes` entry: new values of the items a batch touched, or a reset after a clear. */
export interface PopularityChange {
  readonly id: string;
  readonly reset: boolean;
  readonly items: readonly (readonly [string, StoredPopularity])[];
}

/** Where the mirror reads from (Redis in production; a fake in unit tests). */
export interface PopularityFeed {
  /** Id of the newest `pop-changes` entry; '0-0' when there is none. */
  lastPopularityChange(): Promise<string>;
  /** Entries after `id` (exclusive), oldest first, at most `count`. */
  popularityChangesAfter(id: string, count: number): Promise<PopularityChange[]>;
  /** Every item's stored popularity, a page at a time. */
  allPopularity(): AsyncIterable<readonly (readonly [string, StoredPopularity])[]>;
}

export const POPULARITY_FEED = Symbol('POPULARITY_FEED');

const PAGE = 200;
/**
 * A follower that has not synced for this long may have missed entries Redis trimmed since:
 * it reloads everything instead.
 */
const RELOAD_AFTER_MS = POPULARITY_CHANGES_RETENTION_MS / 2;
const WARN_INTERVAL_MS = 10_000;
/** Per catalog row: ref, impressions, clicks, add-to-carts, purchases; ref NaN: no engagement. */
const STRIDE = 5;

/**
 * This replica's copy of every item's popularity, kept current by following the `pop-changes`
 * stream the ingest module writes with each batch (every `RANK_POPULARITY_SYNC_MS`). A `rank`
 * then reads its 100 candidates' popularity from memory, by catalog row, instead of an MGET:
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
  private aligned: { catalog: ModelCatalog; values: Float64Array } | undefined;
  private readonly staleAfterMs: number;

  constructor(
    @Inject(POPULARITY_FEED) private readonly feed: PopularityFeed,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    metrics: Metrics,
  ) {
    this.logger = logger.child({ component: 'ranking-popularity-mirror' });
    this.staleAfterMs = Math.max(2000, 8 * config.ranking.popularitySyncMs);
    const registry = metrics.registry;
    this.reloads =
      (registry.getSingleMetric('ranking_popularity_mirror_reloads_total') as
        Counter | undefined) ??
      new Counter({
        name: 'ranking_popularity_mirror_reloads_total',
        help: 'Full reloads of the replica popularity copy (start, reset after a rebuild, or a gap)',
        registers: [registry],
      });
    if (
      config.ranking.popularitySyncMs > 0 &&
      registry.getSingleMetric('ranking_popularity_mirror_age_seconds') === undefined
    ) {
      const age: Gauge = new Gauge({
        name: 'ranking_popularity_mirror_age_seconds',
        help: 'Seconds since the replica popularity copy last synced (requests read Redis when it is stale)',
        registers: [registry],
        collect: () => {
          age.set((performance.now() - this.syncedAt) / 1000);
        },
      });
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

  /**
   * Each candidate's decayed popularity at `nowMs`, aligned with `itemIds`; `rows` (their rows in
   * `catalog`, -1 for none) spare the id lookups.
   */
  popularity(
    itemIds: readonly string[],
    nowMs: number,
    rows?: { readonly catalog: ModelCatalog; readonly rows: Int32Array },
  ): (ItemPopularity | undefined)[] {
    const halfLifeMs = this.config.online.popularityHalfLifeMs;
    const aligned = rows === undefined ? undefined : this.alignedWith(rows.catalog);
    return itemIds.map((itemId, i) => {
      const row = rows === undefined ? -1 : rows.rows[i];
      if (aligned === undefined || row < 0) {
        const stored = this.values.get(itemId);
        return stored === undefined ? undefined : popularityAt(stored, nowMs, halfLifeMs);
      }
      const offset = row * STRIDE;
      const ref = aligned[offset];
      if (Number.isNaN(ref)) return undefined;
      const scale = decayed(1, ref, nowMs, halfLifeMs);
      return {
        impressions: aligned[offset + 1] * scale,
        clicks: aligned[offset + 2] * scale,
        addToCarts: aligned[offset + 3] * scale,
        purchases: aligned[offset + 4] * scale,
      };
    });
  }

  private async step(): Promise<void> {
    const started = performance.now();
    try {
      if (this.lastId === undefined || started - this.syncedAt > RELOAD_AFTER_MS) {
        await this.reload();
      } else {
        await this.follow(this.lastId);
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

  private async follow(from: string): Promise<void> {
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
    this.aligned = undefined;
    this.lastId = lastId;
    this.reloads.inc();
    this.logger.info({ items: values.size }, 'popularity copy loaded');
  }

  private set(itemId: string, stored: StoredPopularity): void {
    this.values.set(itemId, stored);
    const aligned = this.aligned;
    const row = aligned?.catalog.index.get(itemId);
    if (aligned !== undefined && row !== undefined) write(aligned.values, row, stored);
  }

  /** Values by row of `catalog`: built once per catalog (a model swap or reload rebuilds it). */
  private alignedWith(catalog: ModelCatalog): Float64Array {
    if (this.aligned?.catalog !== catalog) {
      const values = new Float64Array(catalog.ids.length * STRIDE).fill(Number.NaN);
      catalog.ids.forEach((itemId, row) => {
        const stored = this.values.get(itemId);
        if (stored !== undefined) write(values, row, stored);
      });
      this.aligned = { catalog, values };
    }
    return this.aligned.values;
  }
}

function write(values: Float64Array, row: number, stored: StoredPopularity): void {
  const offset = row * STRIDE;
  values[offset] = stored.ref;
  values[offset + 1] = stored.imp;
  values[offset + 2] = stored.clk;
  values[offset + 3] = stored.cart;
  values[offset + 4] = stored.buy;
}
