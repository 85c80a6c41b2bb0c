import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { setImmediate as yieldToEventLoop, setTimeout as sleep } from 'node:timers/promises';
import { BeforeApplicationShutdown, Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import type { Logger } from '../../common/logger';
import { ShutdownDeadline, ShutdownStep } from '../../common/shutdown-deadline';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { LOGGER } from '../../infra/tokens';
import { buildMayDoBetter } from './hnsw-index';
import type { ItemTable } from './item-table';
import { VECTOR_INDEX_BUILDER, VECTOR_INDEX_OPENER } from './retrieval';
import type { IndexSource, VectorIndex, VectorIndexBuilder, VectorIndexOpener } from './retrieval';
import { RetrievalIndexRepository } from './retrieval-index.repository';
import type {
  IndexQuality,
  IndexShape,
  IndexState,
  IndexStore,
  StoredIndex,
} from './retrieval-index.repository';

/**
 * Labels mapped per turn of the event loop: a million at once held a replica's request thread for
 * about half a second when opening (the ids split, then each looked up) and 0.2 s when storing;
 * in slices the longest turn is 35-60 ms (the collections the million ids cost).
 */
const LABELS_PER_TURN = 50_000;

/** A build lease not renewed for this long is taken over (its builder died); renewed every third. */
const BUILD_LEASE_MS = 60_000;

/** Item ids by index label (row) and back: an ItemTable, or a loaded catalog's order. */
export type RowIds = Pick<ItemTable, 'row' | 'id'>;

/**
 * This process's claim on building one version's index; renewed until released. Other replicas
 * wait for the index it stores (or take over once it lapses).
 */
export interface BuildLease {
  readonly versionId: string;
  release(): Promise<void>;
}

/**
 * Shares ANN indexes between the replicas (and restarts) serving one version: one replica at a
 * time builds a version's index (a lease in PostgreSQL) and stores it there; the others wait for
 * it and open it, checked point by point against their own vectors, instead of building (40
 * minutes at a million items here against about a minute to read). Items changed since the stored
 * build are scanned exactly beside it, as after any build; past RECOMMEND_ANN_MAX_DELTA of them a
 * replica builds and stores a newer one.
 */
@Injectable()
export class StoredIndexService implements OnModuleDestroy, BeforeApplicationShutdown {
  private readonly logger: Logger;
  /** Stores in progress; shutting down abandons them. */
  private readonly keeping = new Set<Promise<void>>();
  private readonly closing = new AbortController();
  /** This process, as the holder of build leases. */
  private readonly builderId = `${hostname()}:${String(process.pid)}:${randomUUID().slice(0, 8)}`;
  /**
   * Abandons the stores in progress, within a step: one that PostgreSQL does not answer would hold
   * the shutdown until the client gives up on it. Its lease lapses; a replica stores one again.
   */
  private readonly shutdown = new ShutdownStep(async () => {
    this.closing.abort();
    await this.deadline.wait(Promise.all(this.keeping), 'storing the ANN index', this.logger);
  });

  constructor(
    @Inject(VECTOR_INDEX_BUILDER) private readonly build: VectorIndexBuilder,
    @Inject(VECTOR_INDEX_OPENER) private readonly open: VectorIndexOpener,
    @Inject(RetrievalIndexRepository) private readonly repository: IndexStore,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    private readonly deadline: ShutdownDeadline,
  ) {
    this.logger = logger.child({ component: 'stored-index' });
  }

  onModuleDestroy(): void {
    void this.shutdown.begin();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.shutdown.begin();
  }

  /**
   * How `versionId`'s indexes come to be over the rows of `items`: the newest stored one when it
   * was built alike and is at most RECOMMEND_ANN_MAX_DELTA rows behind; else, while another
   * replica holds the build lease, the one it stores (looked for every RANK_CATALOG_REFRESH_MS);
   * else built here under the lease, then stored.
   */
  builderFor(versionId: string, items: RowIds): VectorIndexBuilder {
    if (!this.config.retrieval.store) return this.build;
    // Stored indexes this builder opened or stored: not opened again (a rebuild is due because
    // the catalog moved past them).
    const seen = new Set<string>();
    return async (source, signal, progress) => {
      for (let waiting = false; ; waiting = true) {
        const stored = await this.openStored(versionId, items, source, signal, seen).catch(
          (error: unknown) => {
            signal.throwIfAborted();
            this.logger.warn({ err: error, versionId }, 'cannot open the stored index; building');
            return undefined;
          },
        );
        if (stored !== undefined) return stored;
        const lease = await this.lease(versionId);
        if (lease !== undefined) {
          const { index, kept } = await this.buildAndKeep(lease, items, source, signal, progress);
          void kept.then((indexId) => indexId !== undefined && seen.add(indexId));
          return index;
        }
        if (!waiting) {
          this.logger.info(
            { versionId },
            'another process is building this version’s index; waiting for it to be stored',
          );
        }
        await sleep(this.config.ranking.catalogRefreshMs, undefined, { signal });
      }
    };
  }

  /** The version's newest stored index, and the process building one now (for ops). */
  state(versionId: string): Promise<IndexState> {
    return this.repository.state(versionId, BUILD_LEASE_MS);
  }

  /**
   * Whether `versionId` is served now (active, or an arm of the running experiment); true also
   * when PostgreSQL cannot say (its index is then kept building).
   */
  async served(versionId: string): Promise<boolean> {
    try {
      return await this.repository.served(versionId);
    } catch (error) {
      this.logger.warn({ err: error, versionId }, 'cannot tell whether the version is served');
      return true;
    }
  }

  /** Whether `versionId` has a stored index. */
  async hasStored(versionId: string): Promise<boolean> {
    return (await this.repository.newest(versionId)) !== undefined;
  }

  /**
   * Takes the build lease of `versionId` and renews it until released; undefined while another
   * process holds it. When PostgreSQL cannot say, this process builds (it holds the lease then).
   */
  async lease(versionId: string): Promise<BuildLease | undefined> {
    if (!(await this.claim(versionId))) return undefined;
    const renewing = setInterval(() => void this.claim(versionId), BUILD_LEASE_MS / 3);
    renewing.unref();
    let released: Promise<void> | undefined;
    return {
      versionId,
      release: () => {
        clearInterval(renewing);
        released ??= this.repository
          .releaseBuild(versionId, this.builderId)
          .catch((error: unknown) => {
            this.logger.warn({ err: error, versionId }, 'cannot end the index build lease');
          });
        return released;
      },
    };
  }

  /**
   * Makes `source`'s index under `lease`, adopted from another version's stored graph when that
   * serves (see `adopt`) or else built, and stores it (in the background: `kept` settles with
   * the stored index's id, undefined when not stored), then releases the lease.
   */
  async buildAndKeep(
    lease: BuildLease,
    items: RowIds,
    source: IndexSource,
    signal: AbortSignal,
    progress: ((indexed: number) => void) | undefined,
  ): Promise<{ index: VectorIndex; kept: Promise<string | undefined> }> {
    let index: VectorIndex;
    let quality: IndexQuality;
    try {
      const adopted = await this.adopt(lease.versionId, items, source, signal);
      index = adopted?.index ?? (await this.build(source, signal, progress));
      quality = {
        recall: index.recall,
        graphRecall: adopted?.from.graphRecall ?? index.recall,
        graphDrift: adopted?.drift ?? 0,
        adoptedFrom: adopted?.from.versionId,
      };
    } catch (error) {
      await lease.release();
      throw error;
    }
    const kept = this.keep(lease.versionId, index, quality, source, items).finally(async () => {
      await lease.release();
      this.keeping.delete(keeping);
    });
    const keeping = kept.then(() => undefined);
    this.keeping.add(keeping);
    return { index, kept };
  }

  /** Takes or renews the build lease; true also when PostgreSQL cannot say (then build). */
  private async claim(versionId: string): Promise<boolean> {
    try {
      return await this.repository.claimBuild(versionId, this.builderId, BUILD_LEASE_MS);
    } catch (error) {
      this.logger.warn({ err: error, versionId }, 'cannot take the index build lease; building');
      return true;
    }
  }

  private shape(source: IndexSource): IndexShape {
    const { m, efConstruction } = this.config.retrieval;
    return { dimension: source.dimension, m, efConstruction, withBias: source.extra !== undefined };
  }

  /** The version's newest stored index opened over `source`; undefined: none that serves. */
  private async openStored(
    versionId: string,
    items: RowIds,
    source: IndexSource,
    signal: AbortSignal,
    seen: Set<string>,
  ): Promise<VectorIndex | undefined> {
    const stored = await this.repository.newest(versionId);
    if (stored === undefined || seen.has(stored.indexId)) return undefined;
    seen.add(stored.indexId);
    const shape = this.shape(source);
    const differs = (Object.keys(shape) as (keyof IndexShape)[]).filter(
      (key) => shape[key] !== stored[key],
    );
    if (differs.length > 0) {
      this.logger.info(
        { versionId, indexId: stored.indexId, differs },
        'the stored index was built otherwise; building',
      );
      return undefined;
    }
    const started = performance.now();
    const file = this.scratchFile(versionId);
    try {
      const labelItemIds = await this.repository.readTo(stored, file);
      signal.throwIfAborted();
      const labelRows = await labelRowsOf(labelItemIds, items);
      const index = await this.open(file, stored.pointFormat, labelRows, source, signal);
      const stale = index.stale?.length ?? 0;
      const log = { versionId, indexId: stored.indexId, points: index.size, stale };
      if (stale > this.config.retrieval.annMaxDelta) {
        index.close();
        this.logger.info(log, 'the stored index is too far behind the catalog; building');
        return undefined;
      }
      this.logger.info(
        { ...log, bytes: stored.size, openMs: Math.round(performance.now() - started) },
        'stored index opened',
      );
      return index;
    } finally {
      await rm(file, { force: true });
    }
  }

  /**
   * Another version's stored graph with `source`'s vectors (hnsw-graph.ts), when its items moved
   * at most RECOMMEND_ANN_ADOPT_MAX_DRIFT_DEGREES on average since the graph's fresh build (the
   * angles of adoptions in a row added up, a bound by the triangle inequality), its sampled
   * recall is at most RECOMMEND_ANN_ADOPT_RECALL_LOSS below that build's, and at most
   * RECOMMEND_ANN_MAX_DELTA of the source's rows are missing from it; undefined otherwise (then
   * it is built).
   */
  private async adopt(
    versionId: string,
    items: RowIds,
    source: IndexSource,
    signal: AbortSignal,
  ): Promise<{ index: VectorIndex; from: StoredIndex; drift: number } | undefined> {
    const { adopt, store, adoptRecallLoss, adoptMaxDriftDegrees, annMaxDelta } =
      this.config.retrieval;
    if (!adopt || !store) return undefined;
    const started = performance.now();
    const file = this.scratchFile(versionId);
    let log: Record<string, unknown> = { versionId };
    try {
      const from = await this.repository.adoptable(versionId, this.shape(source));
      if (from?.graphRecall === undefined || from.graphDrift === undefined) return undefined;
      log = { ...log, fromVersionId: from.versionId, indexId: from.indexId };
      if (buildMayDoBetter(from.pointFormat, from.graphRecall)) {
        this.logger.info(
          { ...log, graphRecall: from.graphRecall, pointFormat: from.pointFormat },
          'another version’s graph samples low where a build tries a second graph; building',
        );
        return undefined;
      }
      const labelRows = await labelRowsOf(await this.repository.readTo(from, file), items);
      signal.throwIfAborted();
      const index = await this.open(file, from.pointFormat, labelRows, source, signal, true);
      const recall = index.recall ?? 0;
      const missing = index.stale?.length ?? 0;
      const drift = from.graphDrift + (index.drift ?? Number.POSITIVE_INFINITY);
      log = { ...log, recall, graphRecall: from.graphRecall, drift, missing };
      if (
        drift > adoptMaxDriftDegrees ||
        recall < from.graphRecall - adoptRecallLoss ||
        missing > annMaxDelta
      ) {
        index.close();
        this.logger.info(log, 'another version’s graph does not serve this one; building');
        return undefined;
      }
      const ms = Math.round(performance.now() - started);
      this.logger.info({ ...log, ms }, 'retrieval index adopted from another version’s graph');
      return { index, from, drift };
    } catch (error) {
      signal.throwIfAborted();
      this.logger.warn({ ...log, err: error }, 'cannot adopt another version’s graph; building');
      return undefined;
    } finally {
      await rm(file, { force: true });
    }
  }

  /**
   * Stores a freshly built or adopted index for the other replicas; returns its id. A failure is
   * logged, nothing more.
   */
  private async keep(
    versionId: string,
    index: VectorIndex,
    quality: IndexQuality,
    source: IndexSource,
    items: Pick<RowIds, 'id'>,
  ): Promise<string | undefined> {
    if (index.write === undefined || index.pointFormat === undefined) return undefined;
    const started = performance.now();
    const file = this.scratchFile(versionId);
    try {
      await index.write(file);
      const labelItemIds = await labelText(source.rows, items);
      const { indexId, size } = await this.repository.save(
        versionId,
        this.shape(source),
        index.pointFormat,
        quality,
        index.size,
        labelItemIds,
        file,
        this.config.retrieval.storedVersions,
        this.closing.signal,
      );
      this.logger.info(
        {
          versionId,
          indexId,
          bytes: size,
          recall: quality.recall,
          pointFormat: index.pointFormat,
          storeMs: Math.round(performance.now() - started),
        },
        'retrieval index stored',
      );
      return indexId;
    } catch (error) {
      if (!this.closing.signal.aborted) {
        this.logger.warn({ err: error, versionId }, 'retrieval index not stored');
      }
      return undefined;
    } finally {
      await rm(file, { force: true });
    }
  }

  private scratchFile(versionId: string): string {
    return path.join(this.config.retrieval.scratchDir, `index-${versionId}-${randomUUID()}.hnsw`);
  }
}

/**
 * Each label's row in `items` (-1: an item it does not have), from the newline-joined item id of
 * each label ("" none), LABELS_PER_TURN labels per turn of the event loop.
 */
export async function labelRowsOf(
  labelItemIds: string,
  items: Pick<RowIds, 'row'>,
): Promise<Int32Array> {
  const rows: number[] = [];
  for (let start = 0; ;) {
    const end = labelItemIds.indexOf('\n', start);
    const id = labelItemIds.slice(start, end === -1 ? undefined : end);
    rows.push(id === '' ? -1 : items.row(id));
    if (end === -1) break;
    start = end + 1;
    if (rows.length % LABELS_PER_TURN === 0) await yieldToEventLoop();
  }
  return Int32Array.from(rows);
}

/**
 * The item id of each label (the source's rows; "" for rows it does not hold), newline-joined,
 * LABELS_PER_TURN labels per turn of the event loop.
 */
export async function labelText(rows: Int32Array, items: Pick<RowIds, 'id'>): Promise<string> {
  let highest = -1;
  for (const row of rows) highest = Math.max(highest, row);
  const ids = new Array<string>(highest + 1).fill('');
  for (let i = 0; i < rows.length; i++) {
    ids[rows[i]] = items.id(rows[i]);
    if ((i + 1) % LABELS_PER_TURN === 0) await yieldToEventLoop();
  }
  const parts: string[] = [];
  for (let start = 0; start < ids.length; start += LABELS_PER_TURN) {
    parts.push(ids.slice(start, start + LABELS_PER_TURN).join('\n'));
    await yieldToEventLoop();
  }
  return parts.join('\n');
}
