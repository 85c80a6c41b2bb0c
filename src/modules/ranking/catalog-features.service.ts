import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import type { Logger } from '../../common/logger';
import { LOGGER } from '../../infra/tokens';
import { ItemFeatures, RankingRepository } from './ranking.repository';
import type { ModelCatalog } from './serving-model';

/**
 * `ingested_at` is the writing transaction's start, so a row committed after a read can carry an
 * earlier time: each refresh re-reads this window before the previous read's database clock.
 */
const OVERLAP_MS = 5000;

/**
 * Per-replica copy of the item features ranking merges (category, price, creation time), kept
 * in memory so a request never waits for PostgreSQL; refreshed incrementally by `ingested_at`.
 */
@Injectable()
export class CatalogFeatures implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger: Logger;
  private readonly items = new Map<string, ItemFeatures>();
  private lastReadAt: Date | undefined;
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  /** Features by row of the served model's catalog: one id lookup per candidate, not two. */
  private alignment: { catalog: ModelCatalog; features: AlignedFeatures } | undefined;

  constructor(
    private readonly repository: RankingRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ component: 'ranking-catalog' });
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.config.ranking.catalogRefreshMs);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  get(itemId: string): ItemFeatures | undefined {
    return this.items.get(itemId);
  }

  /**
   * Features aligned with `catalog`'s rows. Built once per served catalog (a model swap rebuilds
   * it) and kept current by every refresh.
   */
  alignedWith(catalog: ModelCatalog): AlignedFeatures {
    if (this.alignment?.catalog !== catalog) {
      const features = new AlignedFeatures(catalog.ids.length);
      catalog.ids.forEach((itemId, row) => {
        features.set(row, this.items.get(itemId));
      });
      this.alignment = { catalog, features };
    }
    return this.alignment.features;
  }

  /** Live (not deleted) items, newest first, that `accept` lets through. */
  newestItems(count: number, accept: (itemId: string) => boolean): string[] {
    return [...this.items.values()]
      .filter((item) => !item.deleted && accept(item.itemId))
      .sort((a, b) => (b.createdAtMs ?? 0) - (a.createdAtMs ?? 0))
      .slice(0, count)
      .map((item) => item.itemId);
  }

  /** Reloads what changed since the last refresh; concurrent callers share one run. */
  refresh(): Promise<void> {
    this.refreshing ??= this.load().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async load(): Promise<void> {
    try {
      const since =
        this.lastReadAt === undefined
          ? undefined
          : new Date(this.lastReadAt.getTime() - OVERLAP_MS);
      const { items, readAt } = await this.repository.itemFeatures(since);
      const aligned = this.alignment;
      for (const item of items) {
        this.items.set(item.itemId, item);
        const row = aligned?.catalog.index.get(item.itemId);
        if (aligned !== undefined && row !== undefined) aligned.features.set(row, item);
      }
      this.lastReadAt = readAt;
    } catch (error) {
      this.logger.warn({ err: error }, 'catalog features refresh failed; keeping the last copy');
    }
  }
}

/**
 * The features ranking merges, by catalog row: creation time and price side by side in one
 * typed array (NaN: unknown), so a candidate's features are one cache line rather than an array
 * slot, an object and two boxed numbers scattered over the heap.
 */
export class AlignedFeatures {
  private readonly numbers: Float64Array;
  private readonly categories: (string | undefined)[];

  constructor(rows: number) {
    this.numbers = new Float64Array(rows * 2).fill(Number.NaN);
    this.categories = new Array<string | undefined>(rows).fill(undefined);
  }

  set(row: number, item: ItemFeatures | undefined): void {
    this.numbers[2 * row] = item?.createdAtMs ?? Number.NaN;
    this.numbers[2 * row + 1] = item?.price ?? Number.NaN;
    this.categories[row] = item?.category;
  }

  createdAtMs(row: number): number {
    return this.numbers[2 * row];
  }

  price(row: number): number {
    return this.numbers[2 * row + 1];
  }

  category(row: number): string | undefined {
    return this.categories[row];
  }
}
