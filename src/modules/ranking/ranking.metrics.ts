import type { Counter } from 'prom-client';
import type { MaybePromise } from '../../common/maybe-async';
import { Metrics } from '../metrics/metrics.registry';

export type RankingOperation = 'rank' | 'recommend';
export type RankingStage =
  'user_vector' | 'online_state' | 'retrieval' | 'item_vectors' | 'encoding' | 'scoring' | 'merge';

/** Latency per operation and stage, cache hits and misses, and how often ranking degraded. */
export class RankingMetrics {
  readonly operation;
  readonly stage;
  readonly cache: Counter<'cache' | 'result'>;
  readonly degraded: Counter<'reason'>;
  readonly rebuilds: Counter<'result'>;

  constructor(metrics: Metrics) {
    const buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
    this.operation = metrics.histogram(
      'ranking_operation_duration_seconds',
      'rank / recommend latency inside the service, by outcome',
      ['operation', 'outcome'],
      buckets,
    );
    this.stage = metrics.histogram(
      'ranking_stage_duration_seconds',
      'Latency of each ranking stage (user_vector, online_state, retrieval, item_vectors, encoding, scoring, merge)',
      ['operation', 'stage'],
      buckets,
    );
    this.cache = metrics.counter(
      'ranking_cache_requests_total',
      "Cache lookups by cache (user_vector: either copy; user_vector_local: the replica's own) and result (hit, miss); hit ratio = hit / (hit + miss)",
      ['cache', 'result'],
    );
    this.degraded = metrics.counter(
      'ranking_degraded_total',
      'Answers given in a degraded mode, by reason (no_model, online_state_from_postgres, ...)',
      ['reason'],
    );
    this.rebuilds = metrics.counter(
      'ranking_user_vector_rebuilds_total',
      'Rebuilds of the vectors of users who just interacted, by result: started, joined (a request of a user whose rebuild was in flight), skipped (RANK_STALE_REBUILDS_MAX in flight: answered with the kept vector)',
      ['result'],
    );
  }

  /** Runs `work` and records its duration under `stage`, once its promise settles if it is one. */
  time<T>(
    operation: RankingOperation,
    stage: RankingStage,
    work: () => MaybePromise<T>,
  ): MaybePromise<T> {
    const started = performance.now();
    const done = () => {
      this.stage.observe({ operation, stage }, (performance.now() - started) / 1000);
    };
    let result: MaybePromise<T>;
    try {
      result = work();
    } catch (error) {
      done();
      throw error;
    }
    if (result instanceof Promise) return result.finally(done);
    done();
    return result;
  }

  timeSync<T>(operation: RankingOperation, stage: RankingStage, work: () => T): T {
    const started = performance.now();
    try {
      return work();
    } finally {
      this.stage.observe({ operation, stage }, (performance.now() - started) / 1000);
    }
  }
}
