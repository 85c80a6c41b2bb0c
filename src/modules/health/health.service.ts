import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { withTimeout } from '../../common/timeout';
import { HealthRepository } from './health.repository';

export interface DependencyCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly latencyMs: number;
  /** False for checks that are reported but do not make the replica unready. */
  readonly critical: boolean;
  readonly error?: string;
}

export interface Readiness {
  readonly status: 'ok' | 'unavailable';
  readonly checks: readonly DependencyCheck[];
}

/** Something besides a client connection that can make a replica unready (e.g. a model load). */
export interface HealthIndicator {
  readonly name: string;
  /**
   * Default true. A non-critical failure shows in the report without failing readiness, e.g. a
   * replica that could not load a new model but still serves the previous one.
   */
  readonly critical?: boolean;
  check(): Promise<void>;
}

/** Probes hitting health at high rate share one round of checks per interval. */
const CACHE_MS = 1000;

/**
 * How long readiness waits for a check that cannot make the replica unready. A dependency that
 * hangs instead of refusing (a frozen broker) would otherwise hold every probe for
 * HEALTH_TIMEOUT_MS, past the kubelet's default 1-s probe timeout: every api replica unready,
 * for a dependency it does not need.
 */
const NON_CRITICAL_WAIT_MS = 250;

@Injectable()
export class HealthService {
  private readonly indicators: HealthIndicator[];
  private latest: { at: number; result: Promise<Readiness> } | undefined;

  constructor(
    repository: HealthRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    // Readiness fails only on what this role cannot work without: ranking and ingest both degrade
    // without Redis (PostgreSQL fallback, write-ahead backlog), and only ingest consumes Kafka.
    // An outage of a shared dependency that every replica would report must not empty the service.
    // An api replica answers from what it holds in memory (keys, model, catalog, popularity):
    // a PostgreSQL blip shorter than those caches live must not take every replica out at once.
    const consumesKafka = config.role === 'ingest' || config.role === 'all';
    this.indicators = [
      { name: 'postgres', critical: config.role !== 'api', check: () => repository.pingPostgres() },
      { name: 'redis', critical: false, check: () => repository.pingRedis() },
      { name: 'kafka', critical: consumesKafka, check: () => repository.pingKafka() },
    ];
    // The pooler's path is reported, not required: a ping queued behind a busy query pool would
    // make replicas unready under load (the reason the ping above has a pool of its own).
    if (config.postgres.pooler === 'transaction') {
      this.indicators.push({
        name: 'postgres_pooler',
        critical: false,
        check: () => repository.pingPostgresQueries(),
      });
    }
  }

  register(indicator: HealthIndicator): void {
    this.indicators.push(indicator);
  }

  /**
   * What anyone may see: with API keys on, the dependencies' raw errors are left out (they are on
   * the OPS_PORT listener and in the logs).
   */
  async publicReadiness(): Promise<Readiness> {
    const readiness = await this.readiness();
    if (this.config.auth.mode === 'off') return readiness;
    return {
      status: readiness.status,
      checks: readiness.checks.map(({ name, ok, critical, latencyMs }) => ({
        name,
        ok,
        critical,
        latencyMs,
      })),
    };
  }

  readiness(): Promise<Readiness> {
    const now = Date.now();
    if (this.latest === undefined || now - this.latest.at >= CACHE_MS) {
      this.latest = { at: now, result: this.check() };
    }
    return this.latest.result;
  }

  private async check(): Promise<Readiness> {
    const checks = await Promise.all(this.indicators.map((indicator) => this.run(indicator)));
    const ready = checks.every((check) => check.ok || !check.critical);
    return { status: ready ? 'ok' : 'unavailable', checks };
  }

  private async run(indicator: HealthIndicator): Promise<DependencyCheck> {
    const started = performance.now();
    const critical = indicator.critical ?? true;
    try {
      const waitMs = critical
        ? this.config.healthTimeoutMs
        : Math.min(this.config.healthTimeoutMs, NON_CRITICAL_WAIT_MS);
      await withTimeout(indicator.check(), waitMs, indicator.name);
      return { name: indicator.name, ok: true, critical, latencyMs: performance.now() - started };
    } catch (error) {
      return {
        name: indicator.name,
        ok: false,
        critical,
        latencyMs: performance.now() - started,
        error: error instanceof Error ? error.message : String(error),
      };
    }
  }
}
