import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  OnApplicationBootstrap,
} from '@nestjs/common';
import type { Gauge } from 'prom-client';
import { DomainError } from '../../common/errors';
import type { Logger } from '../../common/logger';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import type { PgListener } from '../../infra/pg-listener';
import { LOGGER } from '../../infra/tokens';
import { HealthService } from '../health/health.service';
import { Metrics } from '../metrics/metrics.registry';
import { RegistryService } from '../registry/registry.service';
import { MODEL_LOADER } from './served-model';
import type { LoadedModel, LoadedModels, ModelLoader } from './served-model';

export const ACTIVATION_LISTENER = Symbol('ACTIVATION_LISTENER');

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
 * Keeps this replica serving the active version. Activation NOTIFYs (and a periodic poll, in case
 * one is missed) trigger a refresh: the artifact is fetched and verified, the loader precomputes
 * what scoring needs, and the new model replaces the old in one reference assignment. Requests
 * that already took `serving()` finish on the object they hold. A failed load keeps the old model
 * and is reported in health.
 */
@Injectable()
export class ModelSwapService
  implements LoadedModels, OnApplicationBootstrap, BeforeApplicationShutdown
{
  private readonly logger: Logger;
  private swapped: SwappedModel | undefined;
  private readonly listeners: (() => void)[] = [];
  private failure: LoadFailure | undefined;
  private refreshing: Promise<void> | undefined;
  private refreshAgain = false;
  private poll: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly swapSeconds;
  private readonly servedGauge: Gauge;

  constructor(
    private readonly registry: RegistryService,
    @Inject(MODEL_LOADER) private readonly loader: ModelLoader,
    @Inject(ACTIVATION_LISTENER) private readonly listener: PgListener,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    health: HealthService,
    metrics: Metrics,
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

  onChange(listener: () => void): void {
    this.listeners.push(listener);
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

  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearInterval(this.poll);
    await this.listener.close();
    await this.refreshing?.catch(() => undefined);
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
    try {
      activeId = await this.registry.activeVersionId();
    } catch (error) {
      // PostgreSQL unreachable: its own health check says so; keep serving and retry on the poll.
      this.logger.warn({ err: error, reason }, 'cannot read the active model version');
      return;
    }
    if (activeId === null || activeId === this.swapped?.versionId) {
      if (activeId !== null) this.failure = undefined;
      return;
    }
    const started = performance.now();
    try {
      const bytes = await this.registry.artifact(activeId);
      const loaded = await this.loader.load(bytes, { id: activeId });
      const loadMs = performance.now() - started;
      this.swapped = { versionId: activeId, loaded, loadedAt: new Date(), loadMs };
      this.failure = undefined;
      for (const listener of this.listeners) listener();
      this.servedGauge.set(Number(activeId));
      this.swapSeconds.observe({ outcome: 'ok' }, loadMs / 1000);
      this.logger.info(
        { versionId: activeId, loadMs: Math.round(loadMs), reason },
        'model swapped',
      );
    } catch (error) {
      this.swapSeconds.observe({ outcome: 'error' }, (performance.now() - started) / 1000);
      if (!(error instanceof DomainError) && isConnectionError(error)) {
        this.logger.warn(
          { err: error, versionId: activeId },
          'model fetch interrupted; will retry',
        );
        return;
      }
      const message = error instanceof Error ? error.message : String(error);
      this.failure = { versionId: activeId, error: message, at: new Date() };
      this.logger.error(
        { err: error, versionId: activeId, servingVersionId: this.swapped?.versionId ?? null },
        'model load failed; keeping the previous model',
      );
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
