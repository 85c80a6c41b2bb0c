import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { Metrics } from '../metrics/metrics.registry';
import { InterestChangeFollower } from '../online-state/interest-change-follower';
import type { InterestChangeListener } from '../online-state/interest-change-follower';

/** A user's interest vector as one model version pooled it (see CachedUserVector). */
export interface LocalUserVector {
  readonly modelVersion: string;
  /** The served vectors' generation when history items lacked vectors; undefined otherwise. */
  readonly vectorsGeneration: number | undefined;
  readonly vector: Float32Array;
}

/**
 * This replica's copy of users' interest vectors, in front of the Redis cache: a `rank` of a user
 * kept here makes no Redis round trip (which cost about 130 µs of the api's CPU per request and
 * a loop turn of waiting, the p99 of a `rank`'s time inside the service). A user's entry is
 * dropped when the `interest-changes` streams say they interacted (at most one
 * RANK_POPULARITY_SYNC_MS later than the Redis cache sees it), and nothing is answered from here
 * while those streams are not followed. The least recently used users go beyond
 * RANK_USER_VECTOR_LOCAL_CAPACITY.
 */
@Injectable()
export class LocalUserVectors implements InterestChangeListener {
  /** In use order, least recent first: a Map iterates in insertion order. */
  private readonly entries = new Map<string, LocalUserVector>();
  private readonly capacity: number;
  /** False with RANK_USER_VECTOR_LOCAL_CAPACITY=0 or RANK_POPULARITY_SYNC_MS=0. */
  readonly enabled: boolean;

  constructor(
    private readonly follower: InterestChangeFollower,
    @Inject(APP_CONFIG) config: AppConfig,
    metrics: Metrics,
  ) {
    this.capacity = config.ranking.userVectorLocalCapacity;
    this.enabled = this.capacity > 0 && follower.follow(this);
    if (this.enabled) {
      metrics.gauge(
        'ranking_local_user_vectors',
        'Users whose interest vectors this replica keeps in memory (RANK_USER_VECTOR_LOCAL_CAPACITY)',
        () => this.entries.size,
      );
    }
  }

  /** Pass to `put`: tells whether a change may have been missed since the vector was read. */
  ticket(): number {
    return this.follower.epoch;
  }

  /** The user's vector for this model version and vectors generation, if kept and current. */
  get(userId: string, modelVersion: string, vectorsGeneration: number): Float32Array | undefined {
    if (!this.enabled || !this.follower.isFresh()) return undefined;
    const entry = this.entries.get(userId);
    if (entry === undefined) return undefined;
    this.entries.delete(userId);
    if (
      entry.modelVersion !== modelVersion ||
      (entry.vectorsGeneration !== undefined && entry.vectorsGeneration !== vectorsGeneration)
    ) {
      return undefined;
    }
    this.entries.set(userId, entry);
    return entry.vector;
  }

  /**
   * Keeps `entry`, read or built from state read when `ticket` was taken; not when the follower
   * told of changes since (one of them may be this user's, already applied to nothing).
   */
  put(userId: string, ticket: number, entry: LocalUserVector): void {
    if (!this.enabled || ticket !== this.follower.epoch) return;
    this.entries.delete(userId);
    this.entries.set(userId, entry);
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
  }

  changed(userIds: readonly string[]): void {
    for (const userId of userIds) this.entries.delete(userId);
  }

  reset(): void {
    this.entries.clear();
  }
}
