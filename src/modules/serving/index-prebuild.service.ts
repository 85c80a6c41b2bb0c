import { BeforeApplicationShutdown, Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import type { Histogram } from 'prom-client';
import type { Logger } from '../../common/logger';
import { ShutdownDeadline, ShutdownStep } from '../../common/shutdown-deadline';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { LOGGER } from '../../infra/tokens';
import { Metrics } from '../metrics/metrics.registry';
import { biasSlot } from './retrieval';
import type { IndexSource } from './retrieval';
import { MODEL_LOADER } from './served-model';
import type { CatalogVectors, LoadedModel, ModelLoader } from './served-model';
import { ServingRepository } from './serving.repository';
import { StoredIndexService } from './stored-index.service';
import type { BuildLease } from './stored-index.service';

/** A registered version, as the process that registered it knows it. */
export interface RegisteredVersion {
  readonly id: string;
  readonly encoderId: string;
  readonly artifact: Buffer;
}

/**
 * Builds a newly registered version's ANN index where it was trained, before any replica serves
 * it, and stores it for the replicas to open (stored-index.service.ts): at a million items a
 * build takes 40 minutes of a core, which the api replicas then never spend, and an activated
 * version's `recommend` moves to it within about a minute instead. The build lease is taken at
 * registration, so replicas that bind the version meanwhile wait for this build instead of
 * starting their own; builds run one at a time, in order. A newer registration supersedes an
 * older version that is not served (neither active nor a running experiment's arm): its build is
 * abandoned, or skipped when its turn comes, so that training more often than a build takes never
 * grows a queue of indexes nobody opens.
 */
@Injectable()
export class IndexPrebuildService implements OnModuleDestroy, BeforeApplicationShutdown {
  private readonly logger: Logger;
  private readonly closing = new AbortController();
  /** The last build queued; the next one starts when it settles. */
  private tail: Promise<void> = Promise.resolve();
  /** The newest version queued here. */
  private newest: bigint | undefined;
  /** The build running now, and what abandons it alone. */
  private running: { readonly versionId: string; readonly abandon: AbortController } | undefined;
  private readonly seconds: Histogram;
  /** Abandons the builds (their leases lapse or are released; a replica builds instead). */
  private readonly shutdown = new ShutdownStep(async () => {
    this.closing.abort();
    await this.deadline.wait(this.settled(), 'the index prebuild', this.logger);
  });

  constructor(
    @Inject(MODEL_LOADER) private readonly loader: ModelLoader,
    @Inject(ServingRepository) private readonly repository: Pick<ServingRepository, 'fingerprint'>,
    private readonly indexes: StoredIndexService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    metrics: Metrics,
    private readonly deadline: ShutdownDeadline,
  ) {
    this.logger = logger.child({ component: 'index-prebuild' });
    this.seconds = metrics.histogram(
      'retrieval_index_prebuild_seconds',
      'Time to load a registered version, build its ANN index and store it, where it was trained',
      [],
      [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600],
    );
  }

  onModuleDestroy(): void {
    void this.shutdown.begin();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.shutdown.begin();
  }

  /** Settles when every build queued so far has ended. */
  settled(): Promise<void> {
    return this.tail;
  }

  /**
   * Queues the build of `version`'s index when one is due: RECOMMEND_ANN_PREBUILD and
   * RECOMMEND_ANN_STORE on, at least RECOMMEND_ANN_MIN_ITEMS live item vectors, none stored yet
   * and no other process building it. Resolves once the lease is taken (or the build is not
   * due); never fails, a failure only means a replica builds it.
   */
  async request(version: RegisteredVersion): Promise<void> {
    const { prebuild, store, annMinItems } = this.config.retrieval;
    if (!prebuild || !store || this.closing.signal.aborted) return;
    const versionId = version.id;
    try {
      const { rows } = await this.repository.fingerprint(version.encoderId);
      if (rows < annMinItems || rows === 0) return;
      if (await this.indexes.hasStored(versionId)) return;
      const lease = await this.indexes.lease(versionId);
      if (lease === undefined) {
        this.logger.info({ versionId }, 'another process is building this version’s index');
        return;
      }
      this.logger.info({ versionId, rows }, 'retrieval index queued for building ahead');
      if (this.newest === undefined || BigInt(versionId) > this.newest) {
        this.newest = BigInt(versionId);
        await this.abandonSuperseded();
      }
      this.tail = this.tail.then(() => this.buildAhead(version, lease));
    } catch (error) {
      this.logger.warn({ err: error, versionId }, 'retrieval index not built ahead');
    }
  }

  /** Abandons the build running now if a newer version supersedes it (see the class). */
  private async abandonSuperseded(): Promise<void> {
    const running = this.running;
    if (running === undefined || (await this.due(running.versionId))) return;
    this.logger.info(
      { versionId: running.versionId, newest: String(this.newest) },
      'retrieval index build abandoned: a newer version supersedes it',
    );
    running.abandon.abort();
  }

  /** Whether `versionId`'s build is still worth its turn: the newest queued, or served. */
  private async due(versionId: string): Promise<boolean> {
    return BigInt(versionId) === this.newest || (await this.indexes.served(versionId));
  }

  private async buildAhead(version: RegisteredVersion, lease: BuildLease): Promise<void> {
    const versionId = version.id;
    const abandon = new AbortController();
    const signal = AbortSignal.any([this.closing.signal, abandon.signal]);
    const started = performance.now();
    this.running = { versionId, abandon };
    let loaded: LoadedModel | undefined;
    try {
      signal.throwIfAborted();
      if (!(await this.due(versionId))) {
        this.logger.info(
          { versionId },
          'retrieval index not built ahead: a newer version supersedes it',
        );
        await lease.release();
        return;
      }
      loaded = await this.loader.load(version.artifact, { id: versionId });
      signal.throwIfAborted();
      const { model, catalog } = loaded;
      if (model.scale <= 0) {
        await lease.release();
        return;
      }
      const { ids } = catalog;
      const source = catalogSource(catalog, model.dimension, model.scale);
      const points = source.rows.length;
      const step = Math.max(1, Math.ceil(points / 10));
      let reported = 0;
      // Rows by id only when another version's graph is read (adopted): a million ids otherwise.
      let rowOf: Map<string, number> | undefined;
      const { index, kept } = await this.indexes.buildAndKeep(
        lease,
        {
          id: (row) => ids[row],
          row: (id) => (rowOf ??= new Map(ids.map((one, row) => [one, row]))).get(id) ?? -1,
        },
        source,
        signal,
        (indexed) => {
          if (indexed - reported < step) return;
          reported = indexed;
          const percent = Math.round((100 * indexed) / points);
          this.logger.info({ versionId, indexed, points, percent }, 'retrieval index building');
        },
      );
      const indexId = await kept.finally(() => {
        index.close();
      });
      if (indexId === undefined) return;
      const seconds = (performance.now() - started) / 1000;
      this.seconds.observe(seconds);
      this.logger.info(
        { versionId, indexId, points, bytes: index.bytes, ms: Math.round(seconds * 1000) },
        'retrieval index built ahead and stored',
      );
    } catch (error) {
      await lease.release();
      if (signal.aborted) return;
      this.logger.warn({ err: error, versionId }, 'retrieval index not built ahead');
    } finally {
      this.running = undefined;
      // Not before: the index's thread reads the tower's output in place (catalogSource). The
      // loader reports it dropped then (dropped-memory.ts).
      loaded?.releaseCatalog?.();
    }
  }
}

/**
 * Every row of a loaded catalog, as a replica's `indexSource` sees them once moved to its rows:
 * each vector with its bias over `scale` appended when any bias is not 0. The loader's matrix is
 * shared already (catalog-adapter.ts); another is copied.
 */
function catalogSource(catalog: CatalogVectors, dimension: number, scale: number): IndexSource {
  const { matrix, bias } = catalog;
  let shared: Float32Array<SharedArrayBuffer>;
  if (matrix.buffer instanceof SharedArrayBuffer) {
    shared = matrix as Float32Array<SharedArrayBuffer>;
  } else {
    shared = new Float32Array(new SharedArrayBuffer(matrix.byteLength));
    shared.set(matrix);
  }
  const rows = Int32Array.from({ length: catalog.ids.length }, (_, row) => row);
  return { matrix: shared, dimension, rows, extra: biasSlot(bias, rows, scale) };
}
