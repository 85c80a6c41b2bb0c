import type { EventType } from './ingest.schemas';

/**
 * The online state's Redis layout, shared with the modules that read it (ranking). No driver here:
 * key names, member encoding and the decay arithmetic only.
 *
 * - `recent:{userId}` ZSET, score = event time (ms), member = JSON `[type, itemId, tsMs, eventId]`;
 *   capped to the newest N; ZREVRANGE gives most recent first. Impressions are not interactions.
 * - `interest:{userId}` HASH `version` (bumped once per new interaction; a cached interest vector
 *   built at another version is stale).
 * - `pop:{itemId}` HASH `ref` (ms) and decayed counts `imp`, `clk`, `cart`, `buy` valid at `ref`:
 *   the value now is `count * 2^-((now - ref) / halfLife)`, so no periodic decay job is needed.
 * - `pop-rank` ZSET, member = itemId, score = log2(engagement at ref) + ref / halfLife: the same
 *   order as current decayed engagement (clk + 3 cart + 5 buy), without ever overflowing.
 */
export function onlineKeys(prefix: string) {
  return {
    recent: (userId: string) => `${prefix}recent:${userId}`,
    interest: (userId: string) => `${prefix}interest:${userId}`,
    popularity: (itemId: string) => `${prefix}pop:${itemId}`,
    popularityRank: `${prefix}pop-rank`,
    /** Patterns of every online-state key, for the rebuild. */
    patterns: [`${prefix}recent:*`, `${prefix}interest:*`, `${prefix}pop:*`, `${prefix}pop-rank`],
  };
}

export const POPULARITY_FIELDS = {
  impression: 'imp',
  click: 'clk',
  add_to_cart: 'cart',
  purchase: 'buy',
} as const satisfies Record<EventType, string>;

/** Weights of the engagement behind `pop-rank`. */
export const ENGAGEMENT_WEIGHTS = { click: 1, add_to_cart: 3, purchase: 5 } as const;

/** Event types that are user interactions (recent list, interest version). */
export function isInteraction(type: EventType): boolean {
  return type !== 'impression';
}

export interface RecentInteraction {
  readonly type: EventType;
  readonly itemId: string;
  readonly ts: number;
  readonly eventId: string;
}

export function encodeRecent(entry: RecentInteraction): string {
  return JSON.stringify([entry.type, entry.itemId, entry.ts, entry.eventId]);
}

export function decodeRecent(member: string): RecentInteraction {
  const [type, itemId, ts, eventId] = JSON.parse(member) as [EventType, string, number, string];
  return { type, itemId, ts, eventId };
}

/** A stored decayed count, brought forward to `nowMs`. */
export function decayed(value: number, refMs: number, nowMs: number, halfLifeMs: number): number {
  return value * 2 ** (-(nowMs - refMs) / halfLifeMs);
}

export interface Popularity {
  readonly impressions: number;
  readonly clicks: number;
  readonly addToCarts: number;
  readonly purchases: number;
}

/** Reads a `pop:{itemId}` hash as decayed counts at `nowMs` (zeros when absent). */
export function popularityAt(
  hash: Readonly<Partial<Record<string, string>>>,
  nowMs: number,
  halfLifeMs: number,
): Popularity {
  const ref = Number(hash.ref ?? nowMs);
  const at = (field: string) => decayed(Number(hash[field] ?? 0), ref, nowMs, halfLifeMs);
  return {
    impressions: at('imp'),
    clicks: at('clk'),
    addToCarts: at('cart'),
    purchases: at('buy'),
  };
}
