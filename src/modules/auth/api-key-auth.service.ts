import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import { OperationTypeNode } from 'graphql';
import type { Counter } from 'prom-client';
import type { Logger } from '../../common/logger';
import { ShutdownDeadline, ShutdownStep } from '../../common/shutdown-deadline';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import type { PgListener } from '../../infra/pg-listener';
import { LOGGER, PG_LISTENER } from '../../infra/tokens';
import { Metrics } from '../metrics/metrics.registry';
import { AuthError, AuthErrorCode } from './access';
import { ApiKeyRole, hashApiKey, isWellFormedApiKey, KEY_FORMAT, roleSatisfies } from './api-key';
import { API_KEYS_CHANNEL, ApiKeyRecord, ApiKeyRepository } from './api-key.repository';
import { TokenBucket } from './token-bucket';

/** Who a request acts as. */
export interface Principal {
  readonly id: string;
  readonly name: string;
  readonly role: ApiKeyRole;
  /** Requests per second on this replica. */
  readonly ratePerSecond: number;
}

/** Safety net only: revocations arrive by NOTIFY; this bounds staleness if one is missed. */
const KNOWN_TTL_MS = 30_000;
/** Unknown keys are remembered briefly so a client retrying a bad key does not hit PostgreSQL. */
const UNKNOWN_TTL_MS = 2_000;
const MAX_UNKNOWN_ENTRIES = 10_000;
/** A known key whose refresh fails (PostgreSQL down) is served on for this long per attempt. */
const STALE_GRACE_MS = 5_000;
/**
 * PostgreSQL lookups of never-seen keys per second per replica: random well-formed keys must not
 * turn into a query each. Every live key is loaded at start (and on every reconnect), and a new
 * one arrives by NOTIFY, so only a key created a moment ago needs a lookup: such a key may wait a
 * second while a flood lasts; known keys never do.
 */
const UNKNOWN_LOOKUPS_PER_SECOND = 50;
/** Retry of the start-up load of every live key while PostgreSQL does not answer. */
const PRELOAD_RETRY_MS = 5_000;
const USAGE_FLUSH_MS = 60_000;
/** Burst = this × the rate: a client may catch up on a short pause without being refused. */
const BURST_FACTOR = 2;

type RejectReason =
  | 'missing'
  | 'malformed'
  | 'unknown'
  | 'forbidden'
  | 'rate_limited'
  | 'lookup_limited'
  | 'unavailable';

interface KnownKey {
  readonly principal: Principal;
  expiresAt: number;
}

/**
 * Verifies API keys on the request path without a database round trip: keys are cached in
 * process by hash (loaded on first use), each key has an in-process token bucket, and the
 * api_keys trigger's NOTIFY evicts a changed key at once on every replica. Rate limits are
 * therefore per replica: the cluster-wide limit of a key is its limit × the number of replicas,
 * the price of not asking Redis on every request.
 */
@Injectable()
export class ApiKeyAuthService
  implements OnApplicationBootstrap, OnModuleDestroy, BeforeApplicationShutdown
{
  private readonly logger: Logger;
  private readonly known = new Map<string, KnownKey>();
  /** Hash → until when it is known to be unknown or revoked. */
  private readonly unknown = new Map<string, number>();
  private readonly loading = new Map<string, Promise<Principal | null>>();
  /** Bumped by every eviction: a lookup that raced one must not cache what it read. */
  private generation = 0;
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly lookupBudget: TokenBucket;
  private readonly used = new Set<string>();
  private flushTimer: NodeJS.Timeout | undefined;
  private preloadRetry: NodeJS.Timeout | undefined;
  private readonly rejections: Counter<'reason'>;
  /** Set at shutdown: a LISTEN reconnect then no longer reloads the keys from a closing pool. */
  private stopping = false;
  /**
   * The last uses recorded, within a step: a database that answers nothing would hold the shutdown
   * until the client gives up on the query, past the grace period. Unrecorded, a key's
   * `last_used_at` misses at most its last minute.
   */
  private readonly shutdown = new ShutdownStep(async () => {
    this.stopping = true;
    clearInterval(this.flushTimer);
    clearTimeout(this.preloadRetry);
    await this.deadline.wait(this.flushUsage(), 'recording API key use', this.logger);
  });

  constructor(
    @Inject(ApiKeyRepository)
    private readonly repository: Pick<ApiKeyRepository, 'allLive' | 'findLive' | 'markUsed'>,
    @Inject(PG_LISTENER)
    private readonly listener: Pick<PgListener, 'listen' | 'onReconnect'>,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    metrics: Metrics,
    private readonly deadline: ShutdownDeadline,
  ) {
    this.logger = logger.child({ component: 'auth' });
    this.lookupBudget = new TokenBucket(
      UNKNOWN_LOOKUPS_PER_SECOND,
      UNKNOWN_LOOKUPS_PER_SECOND,
      performance.now(),
    );
    this.rejections = metrics.counter(
      'auth_rejections_total',
      'GraphQL requests refused by API-key authentication, by reason',
      ['reason'],
    );
  }

  get enabled(): boolean {
    return this.config.auth.mode === 'api-key';
  }

  async onApplicationBootstrap(): Promise<void> {
    if (!this.enabled) {
      this.logger.warn(
        'AUTH_MODE=off: GraphQL serves every request WITHOUT an API key, mutations included. ' +
          'Only for a local demo; set AUTH_MODE=api-key anywhere else.',
      );
      return;
    }
    // Notifications sent while disconnected are lost: start over from PostgreSQL.
    this.listener.onReconnect(() => {
      this.forgetAll();
      void this.preload();
    });
    await this.listener
      .listen(API_KEYS_CHANNEL, (hashHex) => {
        this.forget(hashHex);
      })
      .catch((error: unknown) => {
        this.logger.warn({ err: error }, 'cannot LISTEN for API key changes yet; retrying');
      });
    await this.preload();
    this.flushTimer = setInterval(() => {
      void this.flushUsage();
    }, USAGE_FLUSH_MS);
    this.flushTimer.unref();
  }

  /**
   * Every live key into the cache, so real keys are known before anyone presents them: a flood of
   * random keys on a fresh replica then only competes with keys created since.
   */
  private async preload(): Promise<void> {
    clearTimeout(this.preloadRetry);
    if (this.stopping) return;
    const generation = this.generation;
    try {
      const live = await this.repository.allLive();
      if (generation !== this.generation) return;
      const now = performance.now();
      for (const { hash, record } of live) {
        this.known.set(hash, {
          principal: this.principalOf(record),
          expiresAt: now + KNOWN_TTL_MS,
        });
      }
      this.logger.info({ keys: live.length }, 'API keys loaded');
    } catch (error) {
      this.logger.warn({ err: error }, 'cannot load the API keys yet; retrying');
      this.preloadRetry = setTimeout(() => void this.preload(), PRELOAD_RETRY_MS);
      this.preloadRetry.unref();
    }
  }

  onModuleDestroy(): void {
    void this.shutdown.begin();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.shutdown.begin();
  }

  /**
   * The principal of a presented key (not yet charged: see `charge`). Cached keys cost a hash and
   * two map lookups; only a key not seen for KNOWN_TTL_MS reads PostgreSQL.
   */
  async authenticate(presented: string | undefined, now = performance.now()): Promise<Principal> {
    if (presented === undefined) {
      throw this.reject(
        'missing',
        'UNAUTHENTICATED',
        'missing API key: send x-api-key: <key> or authorization: Bearer <key>',
      );
    }
    if (!isWellFormedApiKey(presented)) {
      throw this.reject(
        'malformed',
        'UNAUTHENTICATED',
        `malformed API key: expected ${KEY_FORMAT}`,
      );
    }
    const hash = hashApiKey(presented).toString('hex');
    let principal = this.cached(hash, now);
    if (principal === undefined) principal = await this.load(hash, now);
    if (principal === null)
      throw this.reject('unknown', 'UNAUTHENTICATED', 'unknown or revoked API key');
    this.used.add(principal.id);
    return principal;
  }

  /**
   * Takes `units` from the key's rate limit (a root field costs one, each candidate text encoded
   * for it one more); RATE_LIMITED naming the key when they are not there.
   */
  charge(principal: Principal, units: number, now = performance.now()): void {
    if (units > 0) this.admit(principal, units, now);
  }

  /** Throws FORBIDDEN naming the operation, the role it needs and the key's role. */
  authorize(
    principal: Principal,
    required: ApiKeyRole,
    operation: OperationTypeNode,
    field: string,
  ): void {
    if (roleSatisfies(principal.role, required)) return;
    throw this.reject(
      'forbidden',
      'FORBIDDEN',
      `${operation} ${field} requires role ${required}; this key has role ${principal.role}`,
      { requiredRole: required, role: principal.role },
    );
  }

  /**
   * Drops one key from the cache (its hash in hex, the NOTIFY payload). Its rate-limit bucket
   * stays: a reload must not refill it (`admit` replaces it when the key's rate changed).
   */
  forget(hashHex: string): void {
    this.generation++;
    this.known.delete(hashHex);
    this.unknown.delete(hashHex);
  }

  forgetAll(): void {
    this.generation++;
    this.known.clear();
    this.unknown.clear();
  }

  async flushUsage(): Promise<void> {
    if (this.used.size === 0) return;
    const ids = [...this.used];
    this.used.clear();
    await this.repository.markUsed(ids, new Date()).catch((error: unknown) => {
      this.logger.debug({ err: error }, 'cannot record API key use; skipped');
    });
  }

  /** Principal, null when known to be unknown or revoked, undefined when PostgreSQL must tell. */
  private cached(hash: string, now: number): Principal | null | undefined {
    const known = this.known.get(hash);
    if (known !== undefined && known.expiresAt > now) return known.principal;
    const unknownUntil = this.unknown.get(hash);
    if (unknownUntil !== undefined && unknownUntil > now) return null;
    return undefined;
  }

  /** One lookup per key at a time; concurrent requests with the same key share it. */
  private load(hash: string, now: number): Promise<Principal | null> {
    let pending = this.loading.get(hash);
    if (pending === undefined) {
      pending = this.lookup(hash, now).finally(() => {
        this.loading.delete(hash);
      });
      this.loading.set(hash, pending);
    }
    return pending;
  }

  private async lookup(hash: string, now: number): Promise<Principal | null> {
    const stale = this.known.get(hash);
    if (stale === undefined && !this.lookupBudget.tryTake(now)) {
      throw this.reject(
        'lookup_limited',
        'RATE_LIMITED',
        'too many unrecognised API keys presented to this replica; retry shortly',
        { retryAfterSeconds: 1 },
      );
    }
    const generation = this.generation;
    let record: ApiKeyRecord | null;
    try {
      record = await this.repository.findLive(Buffer.from(hash, 'hex'));
    } catch (error) {
      if (stale !== undefined) {
        stale.expiresAt = now + STALE_GRACE_MS;
        this.logger.warn(
          { err: error, key: stale.principal.name },
          'API key refresh failed; serving the cached key',
        );
        return stale.principal;
      }
      this.logger.warn({ err: error }, 'cannot look up an API key');
      throw this.reject(
        'unavailable',
        'UNAVAILABLE',
        'cannot verify the API key now (PostgreSQL unreachable); retry shortly',
      );
    }
    const principal = record === null ? null : this.principalOf(record);
    if (generation === this.generation) {
      if (principal === null) {
        this.known.delete(hash);
        this.rememberUnknown(hash, now);
      } else {
        this.known.set(hash, { principal, expiresAt: now + KNOWN_TTL_MS });
        this.unknown.delete(hash);
      }
    }
    return principal;
  }

  private rememberUnknown(hash: string, now: number): void {
    if (this.unknown.size >= MAX_UNKNOWN_ENTRIES) {
      // Oldest first (insertion order): a flood of random keys cannot grow memory without bound.
      const oldest = this.unknown.keys().next();
      if (oldest.done !== true) this.unknown.delete(oldest.value);
    }
    this.unknown.set(hash, now + UNKNOWN_TTL_MS);
  }

  private principalOf(record: ApiKeyRecord): Principal {
    return {
      id: record.id,
      name: record.name,
      role: record.role,
      ratePerSecond: record.rateLimitPerSecond ?? this.config.auth.rateLimitPerSecond[record.role],
    };
  }

  private admit(principal: Principal, units: number, now: number): void {
    let bucket = this.buckets.get(principal.id);
    if (bucket?.ratePerSecond !== principal.ratePerSecond) {
      bucket = new TokenBucket(
        principal.ratePerSecond,
        principal.ratePerSecond * BURST_FACTOR,
        now,
      );
      this.buckets.set(principal.id, bucket);
    }
    if (bucket.tryTake(now, units)) return;
    const retryAfterSeconds = Math.max(1, Math.ceil(bucket.secondsUntil(units, now)));
    throw this.reject(
      'rate_limited',
      'RATE_LIMITED',
      `API key "${principal.name}" exceeded its rate limit of ${principal.ratePerSecond} units/s on this replica (this call costs ${units}); retry in ${retryAfterSeconds} s`,
      { retryAfterSeconds, limitPerSecond: principal.ratePerSecond, cost: units },
    );
  }

  private reject(
    reason: RejectReason,
    code: AuthErrorCode,
    message: string,
    details: Readonly<Record<string, unknown>> = {},
  ): AuthError {
    this.rejections.inc({ reason });
    return new AuthError(code, message, details);
  }
}
