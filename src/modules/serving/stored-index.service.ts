import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import type { Logger } from '../../common/logger';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { LOGGER } from '../../infra/tokens';
import type { ItemTable } from './item-table';
import { VECTOR_INDEX_BUILDER, VECTOR_INDEX_OPENER } from './retrieval';
import type { IndexSource, VectorIndex, VectorIndexBuilder, VectorIndexOpener } from './retrieval';
import { RetrievalIndexRepository } from './retrieval-index.repository';
import type { IndexShape, IndexStore } from './retrieval-index.repository';

/**
 * Shares ANN indexes between the replicas (and restarts) serving one version: the first to build
 * a version's index stores it in PostgreSQL; the others open it, checked point by point against
 * their own vectors, instead of building (40 minutes at a million items here against about a
 * minute to read). Items changed since the stored build are scanned exactly beside it, as after
 * any build; past RECOMMEND_ANN_MAX_DELTA of them the replica builds and stores a newer one.
 */
@Injectable()
export class StoredIndexService implements OnModuleDestroy {
  private readonly logger: Logger;
  /** Stores in progress; shutting down abandons them. */
  private readonly keeping = new Set<Promise<void>>();
  private readonly closing = new AbortController();

  constructor(
    @Inject(VECTOR_INDEX_BUILDER) private readonly build: VectorIndexBuilder,
    @Inject(VECTOR_INDEX_OPENER) private readonly open: VectorIndexOpener,
    @Inject(RetrievalIndexRepository) private readonly repository: IndexStore,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.logger = logger.child({ component: 'stored-index' });
  }

  async onModuleDestroy(): Promise<void> {
    this.closing.abort();
    await Promise.all(this.keeping);
  }

  /**
   * How `versionId`'s indexes come to be over the rows of `items`: the newest stored one when it
   * was built alike and is at most RECOMMEND_ANN_MAX_DELTA rows behind, else built here and then
   * stored.
   */
  builderFor(versionId: string, items: ItemTable): VectorIndexBuilder {
    if (!this.config.retrieval.store) return this.build;
    // Stored indexes this builder opened or stored: not opened again (a rebuild is due because
    // the catalog moved past them).
    const seen = new Set<string>();
    return async (source, signal, progress) => {
      const stored = await this.openStored(versionId, items, source, signal, seen).catch(
        (error: unknown) => {
          signal.throwIfAborted();
          this.logger.warn({ err: error, versionId }, 'cannot open the stored index; building');
          return undefined;
        },
      );
      if (stored !== undefined) return stored;
      const index = await this.build(source, signal, progress);
      const keeping = this.keep(versionId, index, source, items)
        .then((indexId) => {
          if (indexId !== undefined) seen.add(indexId);
        })
        .finally(() => {
          this.keeping.delete(keeping);
        });
      this.keeping.add(keeping);
      return index;
    };
  }

  private shape(source: IndexSource): IndexShape {
    const { m, efConstruction } = this.config.retrieval;
    return { dimension: source.dimension, m, efConstruction, withBias: source.extra !== undefined };
  }

  /** The version's newest stored index opened over `source`; undefined: none that serves. */
  private async openStored(
    versionId: string,
    items: ItemTable,
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
      const labelRows = Int32Array.from(labelItemIds, (id) => (id === '' ? -1 : items.row(id)));
      const index = await this.open(file, labelRows, source, signal);
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
   * Stores a freshly built index for the other replicas; returns its id. A failure is logged,
   * nothing more.
   */
  private async keep(
    versionId: string,
    index: VectorIndex,
    source: IndexSource,
    items: ItemTable,
  ): Promise<string | undefined> {
    if (index.write === undefined) return undefined;
    const started = performance.now();
    const file = this.scratchFile(versionId);
    try {
      await index.write(file);
      let highest = -1;
      for (const row of source.rows) highest = Math.max(highest, row);
      const labelItemIds = new Array<string>(highest + 1).fill('');
      for (const row of source.rows) labelItemIds[row] = items.id(row);
      const { indexId, size } = await this.repository.save(
        versionId,
        this.shape(source),
        index.size,
        labelItemIds,
        file,
        this.config.retrieval.storedVersions,
        this.closing.signal,
      );
      this.logger.info(
        { versionId, indexId, bytes: size, storeMs: Math.round(performance.now() - started) },
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
