import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { Counter, Histogram } from 'prom-client';
import { reportDroppedMemory } from '../../common/dropped-memory';
import type { Logger } from '../../common/logger';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { LOGGER } from '../../infra/tokens';
import { Metrics } from '../metrics/metrics.registry';
import { OnlineStateReader, Read } from '../online-state/online-state.reader';
import type { MaybePromise } from '../../common/maybe-async';
import { POPULARITY_WIDTH, popularityColumns } from '../online-state/online-state.schema';
import { PopularityMirror } from '../online-state/popularity-mirror';
import { ItemTable } from './item-table';
import { topKOf } from './top-k';
import { Retrieval, RetrievalObserver } from './retrieval';
import { RowVectors } from './row-vectors';
import { LOADED_MODELS } from './served-model';
import type { LoadedModel, LoadedModels, ServedModel, Serving } from './served-model';
import { ServingRepository } from './serving.repository';
import { StoredIndexService } from './stored-index.service';

/**
 * `ingested_at` and `updated_at` are their writing transaction's start, so a row committed after
 * a read can carry an earlier time: each read goes back this far before the previous read's
 * database clock (rows seen twice are applied once).
 */
const OVERLAP_MS = 5000;

/** Rows of a version's vectors moved or copied per turn of the event loop (3 MB at 384-d). */
export const COPY_ROWS = 2048;

/** A served model and how far its vectors have followed `item_embeddings`. */
interface Following {
  readonly served: ServedModel;
  readonly from: LoadedModel;
  vectorsReadAt: Date;
}

/** A read, and whether it came from the replica's popularity copy while that is stale. */
export type CopyRead<T> = Read<T> & { readonly fromStaleCopy: boolean };
/** Popularity as `popularityColumns`, aligned with the items asked for. */
export type PopularityRead = CopyRead<Float64Array>;

/** How many of the copy's most engaged items are kept for cold users, and for how long. */
const POPULAR_FROM_COPY = 5000;
const POPULAR_FROM_COPY_TTL_MS = 5000;

/**
 * This replica's view of what it ranks with: one item table (every catalog item by row: features
 * from `items`, popularity from the replica copy, which keeps no item outside the table) and the
 * served model's item vectors by the same rows. A model swap re-binds the new version's vectors to the table (off the request path);
 * every RANK_CATALOG_REFRESH_MS the catalog's changes are followed: features, deletions, and
 * items embedded since, run through the served version's item tower, so a new item is
 * model-scored within seconds of its embedding, without a training run.
 */
@Injectable()
export class ServingService implements OnApplicationBootstrap, OnApplicationShutdown {
  readonly items = new ItemTable();
  private readonly logger: Logger;
  /** The active version's binding. */
  private active: Following | undefined;
  /** The copy's most engaged items when last computed (cold users' fallback). */
  private engaged: { readonly at: number; readonly ids: string[] } | undefined;
  /** The arm versions' bindings (experiments), by version id. */
  private arms = new Map<string, Following>();
  /**
   * The version active before, kept for `recommend` while the active one builds its first ANN
   * index: at a million items that took 40 minutes here, and the exact scan answered about a
   * thirteenth of the requests the index did (docs/performance.md, catalog scale).
   */
  private retiring: Following | undefined;
  private featuresReadAt: Date | undefined;
  private syncing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly followed: Counter;
  private readonly retrievals: Counter;
  private readonly indexBuildSeconds: Histogram;
  private readonly indexOpenSeconds: Histogram;
  private readonly indexAdoptSeconds: Histogram;
  /** Versions' vectors by their rows before they serve (garbage with their version). */
  private readonly prepared = new WeakMap<LoadedModel, RowVectors>();

  constructor(
    @Inject(LOADED_MODELS) private readonly models: LoadedModels,
    private readonly repository: ServingRepository,
    private readonly mirror: PopularityMirror,
    private readonly onlineState: OnlineStateReader,
    private readonly indexes: StoredIndexService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    metrics: Metrics,
  ) {
    this.logger = logger.child({ component: 'serving' });
    const { items } = this;
    this.followed = metrics.counter(
      'serving_catalog_vectors_followed_total',
      'Item vectors run through the served version after its swap (items embedded since)',
    );
    this.retrievals = metrics.counter(
      'recommend_retrieval_total',
      'recommend retrievals by path: exact scan, ANN index (+ exact re-scoring), exact after ANN',
      ['path'],
    );
    this.indexBuildSeconds = metrics.histogram(
      'retrieval_index_build_seconds',
      'Time to build a served version’s ANN index (in the background)',
      [],
      [1, 5, 15, 30, 60, 120, 300, 600, 1800],
    );
    this.indexOpenSeconds = metrics.histogram(
      'retrieval_index_open_seconds',
      'Time until a served version’s ANN index came from the store instead of a build (a wait for another process’s build included)',
      [],
      [1, 5, 15, 30, 60, 120, 300, 600],
    );
    this.indexAdoptSeconds = metrics.histogram(
      'retrieval_index_adopt_seconds',
      'Time to make a served version’s ANN index from another version’s stored graph instead of a build',
      [],
      [1, 5, 15, 30, 60, 120, 300, 600],
    );
    metrics.gauge(
      'retrieval_index_bytes',
      'Bytes held by the ANN indexes of the versions this replica serves',
      () => this.followings().reduce((sum, { served }) => sum + served.retrieval.bytes, 0),
    );
    metrics.gauge(
      'serving_items',
      'Rows of the replica item table (every catalog item, deleted ones included)',
      () => items.size,
    );
    mirror.keepIn({
      holds: (itemId) => items.row(itemId) >= 0,
      replaceAll: (values) => {
        items.resetPopularity(values);
      },
      set: (itemId, stored) => {
        items.setPopularity(items.row(itemId), stored);
      },
    });
    models.onChange(() => {
      this.bind();
    });
    models.beforeServing((loaded) => this.prepare(loaded));
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.sync();
    this.timer = setInterval(() => void this.sync(), this.config.ranking.catalogRefreshMs);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    // An index build runs on a thread of its own, which would keep the process alive; a thread
    // still adding points when the process exits would abort it (see hnsw.thread.ts).
    const held = this.followings();
    // Nothing is retired by the builds these closes stop.
    this.retiring = undefined;
    await Promise.all(held.map(({ served }) => served.retrieval.close()));
  }

  /** What a request ranks with; take it once per request. */
  current(): Serving {
    if (this.models.current() !== this.active?.from) this.bind();
    return { items: this.items, served: this.active?.served };
  }

  /**
   * What `recommend` retrieves and ranks with: the active version once it has its ANN index (or
   * needs none), until then the version active before it, if that one has an index.
   */
  forRetrieval(): Serving {
    const current = this.current();
    const { retiring } = this;
    return retiring === undefined ? current : { items: this.items, served: retiring.served };
  }

  /** What a request of an experiment arm serving `versionId` ranks with; undefined: not loaded. */
  version(versionId: string): Serving | undefined {
    const { served } = this.current();
    if (served?.versionId === versionId) return { items: this.items, served };
    const arm = this.arms.get(versionId);
    return arm === undefined ? undefined : { items: this.items, served: arm.served };
  }

  /**
   * The items' decayed popularity at `nowMs` by their table rows (`itemIds` their ids, asked for
   * only to read Redis or PostgreSQL): from the replica copy while it is fresh, at hand, else from
   * Redis per request. When Redis does not answer either, from the copy as it last synced
   * (`fromStaleCopy`), never per request from PostgreSQL: that sums every event of each candidate,
   * at scale seconds per request for every replica at once. PostgreSQL only before the copy was
   * ever loaded.
   */
  popularity(
    rows: Int32Array,
    nowMs: number,
    itemIds: () => readonly string[],
  ): MaybePromise<PopularityRead> {
    if (this.mirror.isFresh()) {
      return { value: this.fromCopy(rows, nowMs), fromPostgres: false, fromStaleCopy: false };
    }
    return this.redisElseCopy(
      async () => {
        const read = await this.onlineState.popularity(itemIds(), nowMs);
        return { ...read, value: popularityColumns(read.value) };
      },
      async () => {
        const live = await this.onlineState.popularityFromRedis(itemIds(), nowMs);
        return live && popularityColumns(live);
      },
      () => this.fromCopy(rows, nowMs),
    );
  }

  /**
   * Up to `count` popular live items that `accept` lets through, best first, for users without
   * history: from Redis; when it does not answer, from the replica's copy (its most engaged
   * items, recomputed every few seconds), not from PostgreSQL, whose fallback scans `events`.
   * PostgreSQL only before the copy was ever loaded.
   */
  async popularItems(
    count: number,
    accept: (itemId: string) => boolean,
  ): Promise<CopyRead<string[]>> {
    return this.redisElseCopy(
      () => this.onlineState.popularItems(count, accept),
      () => this.onlineState.popularItemsFromRedis(count, accept),
      () => this.mostEngaged().filter(accept).slice(0, count),
    );
  }

  /**
   * Redis, and the copy when Redis does not answer (stale unless it synced within 2 s); before the
   * copy ever loaded, `redisOrPostgres` (the reader's Redis with its PostgreSQL fallback).
   */
  private async redisElseCopy<T>(
    redisOrPostgres: () => Promise<Read<T>>,
    redis: () => Promise<T | undefined>,
    copy: () => T,
  ): Promise<CopyRead<T>> {
    if (!this.mirror.hasCopy()) return { ...(await redisOrPostgres()), fromStaleCopy: false };
    const live = await redis();
    if (live !== undefined) return { value: live, fromPostgres: false, fromStaleCopy: false };
    return { value: copy(), fromPostgres: false, fromStaleCopy: !this.mirror.isFresh() };
  }

  /** The copy's POPULAR_FROM_COPY most engaged live items, best first; kept a few seconds. */
  private mostEngaged(): string[] {
    const now = Date.now();
    if (this.engaged !== undefined && now - this.engaged.at < POPULAR_FROM_COPY_TTL_MS) {
      return this.engaged.ids;
    }
    const { items } = this;
    const halfLifeMs = this.config.online.popularityHalfLifeMs;
    const score = (row: number) =>
      items.deleted(row) ? 0 : items.engagementAt(row, now, halfLifeMs);
    const { rows } = topKOf(
      items.size,
      POPULAR_FROM_COPY,
      (from, to, out) => {
        for (let row = from; row < to; row++) out[row - from] = score(row);
      },
      (row) => !(score(row) > 0),
    );
    const ids = Array.from(rows, (row) => items.id(row));
    this.engaged = { at: now, ids };
    return ids;
  }

  private fromCopy(rows: Int32Array, nowMs: number): Float64Array {
    const halfLifeMs = this.config.online.popularityHalfLifeMs;
    const columns = new Float64Array(rows.length * POPULARITY_WIDTH);
    for (let i = 0; i < rows.length; i++) {
      if (rows[i] >= 0) {
        this.items.popularityInto(rows[i], nowMs, halfLifeMs, columns, i * POPULARITY_WIDTH);
      }
    }
    return columns;
  }

  /** Reads what changed in the catalog since the last time; concurrent callers share one run. */
  sync(): Promise<void> {
    this.syncing ??= this.follow().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  /** Every loaded version's vectors by table row (rows are added for items the table lacks). */
  private bind(): void {
    const firstNewRow = this.items.size;
    const active = this.models.current();
    const arms = new Map<string, Following>();
    for (const [versionId, loaded] of this.models.others()) {
      arms.set(versionId, this.bound(loaded));
    }
    const previous = this.followings();
    const previousActive = this.active;
    this.active = active === undefined ? undefined : this.bound(active);
    this.arms = arms;
    this.retiring = this.keptForRetrieval(previousActive);
    const kept = new Set(this.followings());
    for (const following of previous) {
      if (!kept.has(following)) this.drop(following);
    }
    void this.loadPopularity(firstNewRow);
  }

  /**
   * The binding `recommend` keeps using while the active version's first index builds: the one
   * active before (or the one already kept) if it has an index. Undefined when the active
   * version needs no build (small catalog, or built already).
   */
  private keptForRetrieval(previousActive: Following | undefined): Following | undefined {
    const { active } = this;
    if (active === undefined || active.served.retrieval.indexed) return undefined;
    const building = active.served.retrieval.maintain();
    if (building === undefined) return undefined;
    const kept = [previousActive, this.retiring].find(
      (following) =>
        following !== undefined && following !== active && following.served.retrieval.indexed,
    );
    if (kept === undefined) return undefined;
    if (kept !== this.retiring) {
      this.logger.info(
        { versionId: active.served.versionId, recommendVersionId: kept.served.versionId },
        'recommend stays on the previous version until the active one’s index is built',
      );
    }
    void building.then(() => {
      this.retire(kept, active);
    });
    return kept;
  }

  /** Ends the wait of `kept` once `active`'s build has ended (built or failed). */
  private retire(kept: Following, active: Following): void {
    if (this.retiring !== kept || this.active !== active) return;
    this.retiring = undefined;
    if (!this.followings().includes(kept)) this.drop(kept);
    this.logger.info(
      { versionId: active.served.versionId, indexed: active.served.retrieval.indexed },
      'recommend serves the active version',
    );
  }

  /** Ends a binding no longer served: its index's thread, and its vectors once unused. */
  private drop(following: Following): void {
    void following.served.retrieval.close();
    reportDroppedMemory(following.served.vectors.vectorBytes);
  }

  /** Puts a loaded version's vectors in their rows before it serves, a turn at a time. */
  private async prepare(loaded: LoadedModel): Promise<void> {
    const firstNewRow = this.items.size;
    const copy = this.rowVectors(loaded);
    let step = copy.next();
    while (step.done !== true) {
      await yieldToEventLoop();
      step = copy.next();
    }
    this.prepared.set(loaded, step.value);
    // Served from the rows from now on (bound() takes them from `prepared`).
    loaded.releaseCatalog?.(loaded.catalog.memory !== undefined);
    void this.loadPopularity(firstNewRow);
  }

  /**
   * `loaded`'s vectors by table row (rows are added for items the table lacks), COPY_ROWS rows
   * per step: 50,000 rows in one go held requests up for about 100 ms. The loader's vectors are
   * moved in place (its memory becomes the rows'); others are copied.
   */
  private *rowVectors(loaded: LoadedModel): Generator<void, RowVectors> {
    const { model, catalog } = loaded;
    const { ids, memory } = catalog;
    const d = model.dimension;
    const rows = new Int32Array(ids.length);
    for (let start = 0; start < ids.length; start += COPY_ROWS) {
      const end = Math.min(ids.length, start + COPY_ROWS);
      for (let i = start; i < end; i++) rows[i] = this.items.ensureRow(ids[i]);
      yield;
    }
    const vectors = new RowVectors(d, Math.max(this.items.size, ids.length), memory);
    if (memory !== undefined) {
      yield* vectors.moveToRows(rows, catalog.bias, COPY_ROWS);
      return vectors;
    }
    for (let start = 0; start < ids.length; start += COPY_ROWS) {
      const end = Math.min(ids.length, start + COPY_ROWS);
      for (let i = start; i < end; i++) {
        vectors.set(
          rows[i],
          catalog.matrix.subarray(i * d, (i + 1) * d),
          catalog.bias?.[i] ?? 0,
          0,
        );
      }
      yield;
    }
    return vectors;
  }

  /** The binding of `loaded`: the one it already has, else new (prepared, or copied now). */
  private bound(loaded: LoadedModel): Following {
    const existing = this.followings().find((following) => following.from === loaded);
    if (existing !== undefined) return existing;
    const { model } = loaded;
    let vectors = this.prepared.get(loaded);
    if (vectors === undefined) {
      const copy = this.rowVectors(loaded);
      let step = copy.next();
      while (step.done !== true) step = copy.next();
      vectors = step.value;
      // A load's vectors are moved in place: only once.
      this.prepared.set(loaded, vectors);
    }
    // Items deleted since the copy have no vector to serve.
    for (let row = 0; row < vectors.rows; row++) if (this.items.deleted(row)) vectors.clear(row);
    const readAt = loaded.catalogReadAt ?? new Date();
    const retrieval = new Retrieval(
      vectors,
      model.scale,
      this.config.retrieval,
      this.indexes.builderFor(model.versionId, this.items),
      this.retrievalObserver(model.versionId),
    );
    void retrieval.maintain();
    return {
      served: { versionId: model.versionId, model, vectors, retrieval },
      from: loaded,
      vectorsReadAt: readAt,
    };
  }

  private retrievalObserver(versionId: string): RetrievalObserver {
    return {
      answered: (path) => {
        this.retrievals.inc({ path });
      },
      progress: (indexed, rows) => {
        this.logger.info(
          { versionId, indexed, rows, percent: Math.round((100 * indexed) / rows) },
          'retrieval index building',
        );
      },
      built: ({ rows, buildMs, bytes, stale, adopted, pointFormat }) => {
        // An adopted or opened index is logged where it was made (stored-index.service.ts).
        if (adopted) {
          this.indexAdoptSeconds.observe(buildMs / 1000);
          return;
        }
        if (stale !== undefined) {
          this.indexOpenSeconds.observe(buildMs / 1000);
          return;
        }
        this.indexBuildSeconds.observe(buildMs / 1000);
        this.logger.info(
          { versionId, rows, buildMs: Math.round(buildMs), bytes, pointFormat },
          'retrieval index built',
        );
      },
      failed: (error) => {
        this.logger.error({ err: error, versionId }, 'retrieval index failed; exact scan');
      },
    };
  }

  /** Every binding held: the active one, the one kept for `recommend`, the arms' (once each). */
  private followings(): Following[] {
    const held = new Set(this.arms.values());
    if (this.retiring !== undefined) held.add(this.retiring);
    return this.active === undefined ? [...held] : [this.active, ...held];
  }

  /**
   * The popularity of rows added from `firstRow` on: the copy follows only changes of items it
   * holds, so a new item's value so far is read once. A change that arrived meanwhile is newer.
   */
  private async loadPopularity(firstRow: number): Promise<void> {
    const { items } = this;
    if (this.config.ranking.popularitySyncMs === 0 || firstRow >= items.size) return;
    const ids = Array.from({ length: items.size - firstRow }, (_, i) => items.id(firstRow + i));
    try {
      const values = await this.mirror.current(ids);
      values.forEach((stored, i) => {
        const row = firstRow + i;
        if (stored !== undefined && !items.hasPopularity(row)) items.setPopularity(row, stored);
      });
    } catch (error) {
      this.logger.warn({ err: error, items: ids.length }, 'cannot read new items’ popularity');
    }
  }

  private async follow(): Promise<void> {
    const firstNewRow = this.items.size;
    try {
      const read = await this.repository.itemFeatures(
        this.featuresReadAt && new Date(this.featuresReadAt.getTime() - OVERLAP_MS),
      );
      const followings = this.followings();
      const missing = this.followFeatures(read, followings);
      for (const [i, following] of followings.entries()) {
        await this.followVectors(following, missing[i]);
      }
    } catch (error) {
      this.logger.warn({ err: error }, 'catalog follow failed; keeping what this replica has');
    }
    await this.loadPopularity(firstNewRow);
  }

  /**
   * Applies changed features; returns, per binding of `followings`, the live items its version
   * has no vector for.
   */
  private followFeatures(
    read: Awaited<ReturnType<ServingRepository['itemFeatures']>>,
    followings: readonly Following[],
  ): string[][] {
    const missing = followings.map((): string[] => []);
    for (const item of read.items) {
      const row = this.items.setFeatures(item);
      followings.forEach(({ served: { vectors } }, i) => {
        if (item.deleted) vectors.clear(row);
        else if (!vectors.has(row)) missing[i].push(item.itemId);
      });
    }
    this.featuresReadAt = read.readAt;
    return missing;
  }

  /** Text vectors stored since the last read (and those of `missing`), through the tower. */
  private async followVectors(following: Following, missing: readonly string[]): Promise<void> {
    const { served } = following;
    const { vectors, model } = served;
    const since = new Date(following.vectorsReadAt.getTime() - OVERLAP_MS);
    const { stored, readAt } = await this.repository.textVectorsChanged(
      model.encoderId,
      since,
      missing,
    );
    const fresh = stored.filter((entry) => {
      const row = this.items.row(entry.itemId);
      return (
        entry.vector.length === model.dimension &&
        !(row >= 0 && this.items.deleted(row)) &&
        !(row >= 0 && vectors.storedAtMs(row) === entry.storedAtMs)
      );
    });
    if (fresh.length > 0) {
      const d = model.dimension;
      const text = new Float32Array(fresh.length * d);
      fresh.forEach((entry, i) => {
        text.set(entry.vector, i * d);
      });
      const ids = fresh.map((entry) => entry.itemId);
      const { matrix, bias } = await model.itemTower({ ids, dimension: d, matrix: text });
      fresh.forEach((entry, i) => {
        const row = this.items.ensureRow(entry.itemId);
        vectors.set(row, matrix.subarray(i * d, (i + 1) * d), bias[i] ?? 0, entry.storedAtMs);
      });
      this.followed.inc(fresh.length);
      this.logger.debug({ versionId: served.versionId, items: fresh.length }, 'vectors followed');
    }
    following.vectorsReadAt = readAt;
    void served.retrieval.maintain();
  }
}
