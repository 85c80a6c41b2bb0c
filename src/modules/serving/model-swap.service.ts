import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import type { Gauge } from 'prom-client';
import { DomainError } from '../../common/errors';
import type { Logger } from '../../common/logger';
import { APP_CONFIG } from '../../config/config.module';
import { ShutdownDeadline, ShutdownStep } from '../../common/shutdown-deadline';
import type { AppConfig } from '../../config/config';
import type { PgListener } from '../../infra/pg-listener';
import { LOGGER, PG_LISTENER } from '../../infra/tokens';
import { HealthService } from '../health/health.service';
import { Metrics } from '../metrics/metrics.registry';
import { ExperimentAssignment } from '../experiments/experiment-assignment.service';
import { RegistryService } from '../registry/registry.service';
import { MODEL_LOADER } from './served-model';
import type { LoadedModel, LoadedModels, ModelLoader } from './served-model';

/** The version this replica serves, as loaded. */
export interface SwappedModel {
  readonly versionId: string;
  readonly loaded: LoadedModel;
  readonly loadedAt: Date;
  readonly loadMs: number;
}

export interface LoadFailure {
  readonly versionId: string;
  readonly error: string;
  readonly at: Date;
}

export interface ServingStatus {
  readonly model: SwappedModel | undefined;
  /** The last load that failed and has not been superseded by a successful one. */
  readonly failure: LoadFailure | undefined;
}

/**
 * Keeps this replica serving the active version, and the versions the running experiment's arms
 * serve (loaded the same way, dropped when the experiment ends). Activation and experiment
 * NOTIFYs (and a periodic poll, in case one is missed) trigger a refresh: the artifact is fetched
 * and verified, the loader precomputes what scoring needs, and the new model replaces the old in
 * one reference assignment. Requests
 * that already took `serving()` finish on the object they hold. A failed load keeps the old model
 * and is reported in health.
 */
@Injectable()
export class ModelSwapService
  implements LoadedModels, OnApplicationBootstrap, OnModuleDestroy, BeforeApplicationShutdown
{
  private readonly logger: Logger;
  private swapped: SwappedModel | undefined;
  /** Versions an experiment arm serves besides the active one. */
  private readonly armModels = new Map<string, SwappedModel>();
  private readonly listeners: (() => void)[] = [];
  private readonly preparers: ((loaded: LoadedModel) => Promise<void>)[] = [];
  private failure: LoadFailure | undefined;
  private refreshing: Promise<void> | undefined;
  private refreshAgain = false;
  private poll: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly shutdown = new ShutdownStep(async () => {
    this.stopped = true;
    clearInterval(this.poll);
    // A refresh waiting on a database that answers nothing would hold the shutdown until its
    // query times out; the next replica loads what this one did not.
    if (this.refreshing === undefined) return;
    await this.deadline.wait(this.refreshing, 'the model refresh', this.logger);
  });
  private readonly swapSeconds;
  private readonly servedGauge: Gauge;
  private readonly servedCreatedGauge: Gauge;

  constructor(
    private readonly registry: RegistryService,
    private readonly experiments: ExperimentAssignment,
    @Inject(MODEL_LOADER) private readonly loader: ModelLoader,
    @Inject(PG_LISTENER) private readonly listener: PgListener,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    health: HealthService,
    metrics: Metrics,
    private readonly deadline: ShutdownDeadline,
  ) {
    this.logger = logger.child({ component: 'model-swap' });
    this.swapSeconds = metrics.histogram(
      'model_load_seconds',
      'Time to fetch, verify and precompute a model version on this replica',
      ['outcome'],
      [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    );
    this.servedGauge = metrics.gauge(
      'model_served_version',
      'Id of the model version this replica serves (0: none)',
    );
    this.servedGauge.set(0);
    this.servedCreatedGauge = metrics.gauge(
      'model_served_version_created_timestamp_seconds',
      'When the version this replica serves was created by its training run (unix seconds; 0: none)',
    );
    health.register({
      name: 'model',
      critical: false,
      check: () => {
        const failure = this.failure;
        if (!failure) return Promise.resolve();
        const serving = this.swapped ? `serving version ${this.swapped.versionId}` : 'no model';
        return Promise.reject(
          new Error(`${serving}; loading version ${failure.versionId} failed: ${failure.error}`),
        );
      },
    });
  }

  current(): LoadedModel | undefined {
    return this.swapped?.loaded;
  }

  others(): ReadonlyMap<string, LoadedModel> {
    return new Map([...this.armModels].map(([id, swapped]) => [id, swapped.loaded]));
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  beforeServing(prepare: (loaded: LoadedModel) => Promise<void>): void {
    this.preparers.push(prepare);
  }

  status(): ServingStatus {
    return { model: this.swapped, failure: this.failure };
  }

  async onApplicationBootstrap(): Promise<void> {
    this.listener.onReconnect(() => {
      // Notifications sent while disconnected are lost.
      void this.refresh('reconnect');
    });
    await this.listener
      .listen(this.registry.activationChannel, () => {
        void this.refresh('notify');
      })
      .catch((error: unknown) => {
        this.logger.warn({ err: error }, 'cannot LISTEN for model activations yet; retrying');
      });
    // A replica that starts after an activation loads the active version before it serves.
    await this.refresh('boot');
    this.poll = setInterval(() => {
      void this.refresh('poll');
    }, this.config.modelLifecycle.pollIntervalMs);
    this.poll.unref();
  }

  onModuleDestroy(): void {
    void this.shutdown.begin();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.shutdown.begin();
  }

  /** Brings this replica to the active version; concurrent calls coalesce into one more pass. */
  refresh(reason: string): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.refreshing) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      try {
        do {
          this.refreshAgain = false;
          await this.refreshOnce(reason);
        } while (this.refreshRequested() && !this.stopped);
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  /** Read through a method: set by concurrent callers while a pass awaits. */
  private refreshRequested(): boolean {
    return this.refreshAgain;
  }

  private async refreshOnce(reason: string): Promise<void> {
    let activeId: string | null;
    let armIds: readonly string[];
    try {
      [activeId, armIds] = await Promise.all([
        this.registry.activeVersionId(),
        this.experiments.armVersions(),
      ]);
    } catch (error) {
      // PostgreSQL unreachable: its own health check says so; keep serving and retry on the poll.
      this.logger.warn({ err: error, reason }, 'cannot read the versions to serve');
      return;
    }
    const wanted = new Set(armIds.filter((id) => id !== activeId));
    let changed = false;
    for (const id of [...this.armModels.keys()]) {
      if (wanted.has(id)) continue;
      this.armModels.delete(id);
      changed = true;
    }
    if (activeId !== null && activeId !== this.swapped?.versionId) {
      const next = this.armModels.get(activeId) ?? (await this.load(activeId, reason));
      if (next !== undefined) {
        const previous = this.swapped;
        this.armModels.delete(activeId);
        // The version that was active may go on serving an arm: keep it rather than reload it.
        if (previous !== undefined && wanted.has(previous.versionId)) {
          this.armModels.set(previous.versionId, previous);
        }
        this.swapped = next;
        this.servedGauge.set(Number(activeId));
        await this.recordCreated(activeId);
        changed = true;
      }
    }
    for (const id of wanted) {
      if (this.armModels.has(id) || this.stopped) continue;
      const loaded = await this.load(id, reason);
      if (loaded === undefined) continue;
      this.armModels.set(id, loaded);
      changed = true;
    }
    // A failed version nobody asks for any more (ops moved on) is no longer a fault.
    const failed = this.failure?.versionId;
    if (failed !== undefined && failed !== activeId && !wanted.has(failed)) {
      this.failure = undefined;
    }
    if (changed) for (const listener of this.listeners) listener();
  }

  /** Best effort: the staleness gauge must not hold up a swap. */
  private async recordCreated(versionId: string): Promise<void> {
    try {
      const version = await this.registry.getVersion(versionId);
      this.servedCreatedGauge.set(version.createdAt.getTime() / 1000);
    } catch (error) {
      this.logger.warn({ err: error, versionId }, 'cannot read the served version’s creation time');
    }
  }

  /** Fetches, verifies and loads one version; undefined (and reported) when it fails. */
  private async load(versionId: string, reason: string): Promise<SwappedModel | undefined> {
    const started = performance.now();
    try {
      const bytes = await this.registry.artifact(versionId);
      const loaded = await this.loader.load(bytes, { id: versionId });
      for (const prepare of this.preparers) await prepare(loaded);
      const loadMs = performance.now() - started;
      if (this.failure?.versionId === versionId) this.failure = undefined;
      this.swapSeconds.observe({ outcome: 'ok' }, loadMs / 1000);
      this.logger.info({ versionId, loadMs: Math.round(loadMs), reason }, 'model loaded');
      return { versionId, loaded, loadedAt: new Date(), loadMs };
    } catch (error) {
      this.swapSeconds.observe({ outcome: 'error' }, (performance.now() - started) / 1000);
      if (!(error instanceof DomainError) && isConnectionError(error)) {
        this.logger.warn({ err: error, versionId }, 'model fetch interrupted; will retry');
        return undefined;
      }
      const message = error instanceof Error ? error.message : String(error);
      this.failure = { versionId, error: message, at: new Date() };
      this.logger.error(
        { err: error, versionId, servingVersionId: this.swapped?.versionId ?? null },
        'model load failed; keeping the previous model',
      );
      return undefined;
    }
  }
}

/** Network-level failures (not a bad artifact): transient, not worth reporting as a model fault. */
function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return (
    typeof code === 'string' &&
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', '57P01', '08006', '08001'].includes(code)
  );
}
