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

/** A kept user: mutated in place when the user's vector is rebuilt (see LocalUserVectors). */
interface KeptUserVector {
  modelVersion: string;
  vectorsGeneration: number | undefined;
  vector: Float32Array;
  /** Read since the eviction scan last passed it (the scan's second chance). */
  used: boolean;
  /** The user interacted since it was built: not answered, only kept for its rebuild. */
  stale: boolean;
}

/**
 * This replica's copy of users' interest vectors, in front of the Redis cache: a `rank` of a user
 * kept here makes no Redis round trip (which cost about 130 µs of the api's CPU per request and
 * a loop turn of waiting, the p99 of a `rank`'s time inside the service). A user's entry is
 * marked stale when the `interest-changes` streams say they interacted (at most one
 * RANK_POPULARITY_SYNC_MS later than the Redis cache sees it), and nothing is answered from here
 * while those streams are not followed. Beyond RANK_USER_VECTOR_LOCAL_CAPACITY users, one not
 * read since the last eviction scan goes (second chance, an approximate least recently used).
 *
 * Nothing here allocates per request: a read only flags its entry, and a rebuilt vector is copied
 * into the user's own array. Entries live for seconds, so whatever a request allocated and left
 * here would be promoted to the old generation and collected by a full mark-compact, whose pauses
 * were the tail of `rank` (docs/performance.md).
 */
@Injectable()
export class LocalUserVectors implements InterestChangeListener {
  /** In insertion order, which the eviction scan follows. */
  private readonly entries = new Map<string, KeptUserVector>();
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

  /**
   * The user's vector for this model version and vectors generation, if kept and current. It is
   * the copy's own array: read it before the request next waits (a rebuild overwrites it).
   */
  get(userId: string, modelVersion: string, vectorsGeneration: number): Float32Array | undefined {
    if (!this.enabled || !this.follower.isFresh()) return undefined;
    const entry = this.entries.get(userId);
    if (entry === undefined || entry.stale || entry.modelVersion !== modelVersion) return undefined;
    if (entry.vectorsGeneration !== undefined && entry.vectorsGeneration !== vectorsGeneration) {
      return undefined;
    }
    entry.used = true;
    return entry.vector;
  }

  /**
   * The user's kept vector for this model version and vectors generation although they
   * interacted since it was built (`get` answers only current ones): what `rank` answers with when
   * the rebuild is late. The copy's own array, as `get`'s.
   */
  previous(
    userId: string,
    modelVersion: string,
    vectorsGeneration: number,
  ): Float32Array | undefined {
    if (!this.enabled || !this.follower.isFresh()) return undefined;
    const entry = this.entries.get(userId);
    if (entry === undefined || !entry.stale || entry.modelVersion !== modelVersion)
      return undefined;
    if (entry.vectorsGeneration !== undefined && entry.vectorsGeneration !== vectorsGeneration) {
      return undefined;
    }
    return entry.vector;
  }

  /**
   * Whether the user's kept vector went stale because they interacted: the Redis cache's vector
   * is then most likely stale as well, and a rebuild needs the user's history.
   */
  interacted(userId: string): boolean {
    return this.entries.get(userId)?.stale === true;
  }

  /**
   * Keeps a copy of `vector`, read or built from state read when `ticket` was taken; not when
   * the follower told of changes since (one of them may be this user's, already applied to
   * nothing).
   */
  put(userId: string, ticket: number, vector: LocalUserVector): void {
    if (!this.enabled || ticket !== this.follower.epoch) return;
    const kept = this.entries.get(userId);
    if (kept === undefined) {
      if (this.entries.size >= this.capacity) this.evictOne();
      this.entries.set(userId, {
        modelVersion: vector.modelVersion,
        vectorsGeneration: vector.vectorsGeneration,
        vector: vector.vector.slice(),
        used: false,
        stale: false,
      });
      return;
    }
    kept.stale = false;
    kept.modelVersion = vector.modelVersion;
    kept.vectorsGeneration = vector.vectorsGeneration;
    if (kept.vector.length === vector.vector.length) kept.vector.set(vector.vector);
    else kept.vector = vector.vector.slice();
  }

  changed(userIds: readonly string[]): void {
    for (const userId of userIds) {
      const entry = this.entries.get(userId);
      if (entry !== undefined) entry.stale = true;
    }
  }

  reset(): void {
    this.entries.clear();
  }

  /** Drops the first entry, in insertion order, not read since the scan last passed it. */
  private evictOne(): void {
    for (const [userId, entry] of this.entries) {
      this.entries.delete(userId);
      if (!entry.used) return;
      entry.used = false;
      this.entries.set(userId, entry);
    }
  }
}
