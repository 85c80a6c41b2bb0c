import type { EventType } from '../../common/event-types';
import type { ItemPopularity, StoredPopularity } from './online-state.schema';

/** One interaction of a user, most recent first in the lists below. */
export interface Interaction {
  readonly type: EventType;
  readonly itemId: string;
  readonly ts: number;
}

/**
 * The online state as readers see it, whatever keeps it: Redis (online-state-redis.repository.ts)
 * or, when Redis fails, PostgreSQL computing it from `events` (online-state-postgres.repository.ts).
 * Both pass the same contract test (test/online-state.int-spec.ts).
 */
export interface OnlineStateStore {
  /** The user's newest interactions, most recent first. */
  recent(userId: string, limit: number): Promise<Interaction[]>;
  /** Each item's decayed counts at `nowMs`, aligned with `itemIds` (undefined: no events). */
  popularity(itemIds: readonly string[], nowMs: number): Promise<(ItemPopularity | undefined)[]>;
  /**
   * A page of items by decayed engagement at `nowMs`, best first (the order does not change with
   * time: every count decays alike; PostgreSQL needs the time for its horizon).
   */
  popularItems(offset: number, count: number, nowMs: number): Promise<string[]>;
}

/** One `pop-changes` entry: new values of the items a batch touched, or a reset after a clear. */
export interface PopularityChange {
  readonly id: string;
  readonly reset: boolean;
  readonly items: readonly (readonly [string, StoredPopularity])[];
}

/** What the replica copy of popularity follows (Redis in production; a fake in unit tests). */
export interface PopularityFeed {
  /** Id of the newest `pop-changes` entry; '0-0' when there is none. */
  lastPopularityChange(): Promise<string>;
  /** Entries after `id` (exclusive), oldest first, at most `count`. */
  popularityChangesAfter(id: string, count: number): Promise<PopularityChange[]>;
  /** Every item's stored popularity, a page at a time. */
  allPopularity(): AsyncIterable<readonly (readonly [string, StoredPopularity])[]>;
  /** These items' stored popularity, aligned (undefined: none). */
  popularityOf(itemIds: readonly string[]): Promise<(StoredPopularity | undefined)[]>;
}

export const POPULARITY_FEED = Symbol('POPULARITY_FEED');

/** One `interest-changes` entry: users whose interest version moved, or a reset after a clear. */
export interface InterestChange {
  readonly id: string;
  readonly reset: boolean;
  readonly userIds: readonly string[];
}

/** What a replica's copies of interest vectors follow, per user bucket (Redis; a fake in unit tests). */
export interface InterestChangeFeed {
  /** Id of the newest entry of each bucket's stream, by bucket; '0-0' where there is none. */
  lastInterestChanges(): Promise<string[]>;
  /** Bucket `bucket`'s entries after `id` (exclusive), oldest first, at most `count`. */
  interestChangesAfter(bucket: number, id: string, count: number): Promise<InterestChange[]>;
}

export const INTEREST_CHANGE_FEED = Symbol('INTEREST_CHANGE_FEED');
