import type { EventType } from '../../common/event-types';
import { KEY_SLOTS, keySlot } from '../../common/key-slot';

/**
 * The one source of the online state's semantics: key layout, stored formats, the decay and the
 * engagement weights. The Redis script (online-state-redis.repository.ts) and the PostgreSQL
 * fallback (online-state-postgres.repository.ts) take their constants and formulas from here, in
 * their own syntax, generated below; the contract test (test/online-state.int-spec.ts) checks
 * that both compute what the TypeScript functions here compute.
 *
 * Layout (every key under REDIS_KEY_PREFIX, then a Redis Cluster hash tag `{…}`: a script's keys
 * must share one slot):
 * - `{u…}recent:{userId}` ZSET, score = event time (ms), member = JSON `[type, itemId, tsMs, eventId]`;
 *   capped to the newest ONLINE_RECENT_CAP; impressions are not interactions.
 * - `{u…}interest:{userId}` HASH `version`, bumped once per new interaction (a cached interest
 *   vector built at another version is stale).
 * - `{u…}interest-changes` STREAM, one per user tag, one entry per applied batch that bumped a
 *   version there: field `u` holds the users' ids, one per line; an entry with field `reset`
 *   follows a clear. Entries older than 15 s are trimmed. Ranking replicas follow them to drop
 *   their own copies of those users' interest vectors (interest-change-follower.ts).
 * - `{items}item-pop:{itemId}` STRING `ref,imp,clk,cart,buy`: the decayed counts valid at `ref`
 *   (ms). A count now is `count × decay(ref, now)`, so no periodic decay job is needed. One string
 *   rather than a hash: 100 items are one MGET.
 * - `{items}pop-rank` ZSET, member = itemId, score = log2(engagement at ref) + ref / halfLife: the
 *   order of current decayed engagement, without ever overflowing.
 * - `{items}pop-changes` STREAM, one entry per applied batch: field `v` holds lines
 *   `itemId TAB value`; an entry with field `reset` follows a clear. Entries older than 15 s are
 *   trimmed. Ranking replicas follow it to keep a copy of every item's popularity
 *   (popularity-mirror.ts).
 * - `{u…}applied:{token}`, `{items}applied:{token}` STRING, kept a day: a batch applied under this
 *   token counts once (one marker per tag the batch touched).
 *
 * Users are spread over USER_BUCKETS tags `{u…}` (by a hash of the user id), whose slots lie in
 * distinct sixteenths of the slot space, so a cluster's masters share them evenly. The item keys
 * share one tag: `pop-rank` and `pop-changes` are single keys updated with the counts atomically.
 */
export const KEY = {
  recent: 'recent:',
  interest: 'interest:',
  popularity: 'item-pop:',
  popularityRank: 'pop-rank',
  popularityChanges: 'pop-changes',
  interestChanges: 'interest-changes',
  applied: 'applied:',
} as const;

/** How many hash tags users' keys are spread over; changing it needs a rebuild. */
export const USER_BUCKETS = 16;

/** The hash tag of every item key. */
export const ITEMS_TAG = '{items}';

/**
 * Bucket `b`'s tag: `{u<b>.<n>}` with the smallest `n` that puts its slot within 16 slots of the
 * middle of the b-th 1/USER_BUCKETS of the slot space. `redis-cli --cluster create` gives N
 * masters contiguous equal slot ranges, whose bounds all lie further than that from those
 * middles for N up to USER_BUCKETS: each master then holds USER_BUCKETS / N buckets (rounded).
 */
export const USER_TAGS: readonly string[] = Array.from({ length: USER_BUCKETS }, (_, bucket) => {
  const middle = ((bucket + 0.5) * KEY_SLOTS) / USER_BUCKETS;
  for (let n = 0; ; n++) {
    const tag = `{u${bucket}.${n}}`;
    if (Math.abs(keySlot(tag) - middle) <= 16) return tag;
  }
});

/**
 * Which of the USER_BUCKETS tags holds this user's keys: FNV-1a of the id (CRC16's low bits, being
 * linear, put sequential ids unevenly).
 */
export function userBucket(userId: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(userId)) hash = Math.imul(hash ^ byte, 0x01000193);
  return (hash >>> 0) % USER_BUCKETS;
}

export function onlineKeys(prefix: string) {
  const user = (userId: string) => `${prefix}${USER_TAGS[userBucket(userId)] ?? ''}`;
  return {
    recent: (userId: string) => `${user(userId)}${KEY.recent}${userId}`,
    interest: (userId: string) => `${user(userId)}${KEY.interest}${userId}`,
    /** User bucket `bucket`'s `interest-changes` stream. */
    interestChanges: (bucket: number) =>
      `${prefix}${USER_TAGS[bucket] ?? ''}${KEY.interestChanges}`,
    /** The applied-batch marker in user bucket `bucket`. */
    userApplied: (bucket: number, token: string) =>
      `${prefix}${USER_TAGS[bucket] ?? ''}${KEY.applied}${token}`,
    popularity: (itemId: string) => `${prefix}${ITEMS_TAG}${KEY.popularity}${itemId}`,
    popularityRank: `${prefix}${ITEMS_TAG}${KEY.popularityRank}`,
    popularityChanges: `${prefix}${ITEMS_TAG}${KEY.popularityChanges}`,
    itemsApplied: (token: string) => `${prefix}${ITEMS_TAG}${KEY.applied}${token}`,
    /** Patterns of every online-state key, for the rebuild; the prefix's slot-less layout too. */
    patterns: [
      `${prefix}{u*}${KEY.recent}*`,
      `${prefix}{u*}${KEY.interest}*`,
      `${prefix}{u*}${KEY.interestChanges}`,
      `${prefix}${ITEMS_TAG}${KEY.popularity}*`,
      `${prefix}${ITEMS_TAG}${KEY.popularityRank}`,
      `${prefix}${ITEMS_TAG}${KEY.popularityChanges}`,
      ...LEGACY_KEYS.map((key) => `${prefix}${key}`),
    ],
  };
}

/** Keys of the layouts before hash tags (and `pop:` hashes before `item-pop:`): the rebuild removes them. */
const LEGACY_KEYS = [
  `${KEY.recent}*`,
  `${KEY.interest}*`,
  `${KEY.popularity}*`,
  'pop:*',
  KEY.popularityRank,
  KEY.popularityChanges,
] as const;

/**
 * How long `pop-changes` and `interest-changes` keep an entry; a follower that fell further
 * behind starts over (reloads, or forgets what it copied).
 */
export const POPULARITY_CHANGES_RETENTION_MS = 15_000;

/**
 * How long after its last read point a follower of those streams may still follow: later, Redis
 * may have trimmed entries it has not read (half the retention leaves room for a sync interval
 * and a slow read).
 */
export const CHANGES_FOLLOW_WINDOW_MS = POPULARITY_CHANGES_RETENTION_MS / 2;

/** How long a replica's copy may go without a sync before requests stop trusting it. */
export function copyStaleAfterMs(syncMs: number): number {
  return Math.max(2000, 8 * syncMs);
}

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

/** Decayed interaction counts of an item at some time. */
export interface ItemPopularity {
  readonly impressions: number;
  readonly clicks: number;
  readonly addToCarts: number;
  readonly purchases: number;
}

/** Counts per item in popularity columns: impressions, clicks, add-to-carts, purchases. */
export const POPULARITY_WIDTH = 4;

/**
 * Popularity objects (undefined: no engagement) as columns, POPULARITY_WIDTH per item (item i's
 * from `i * POPULARITY_WIDTH`), zeros without engagement: what ranking reads, without an
 * object per item.
 */
export function popularityColumns(values: readonly (ItemPopularity | undefined)[]): Float64Array {
  const columns = new Float64Array(values.length * POPULARITY_WIDTH);
  values.forEach((popularity, i) => {
    if (popularity === undefined) return;
    const at = i * POPULARITY_WIDTH;
    columns[at] = popularity.impressions;
    columns[at + 1] = popularity.clicks;
    columns[at + 2] = popularity.addToCarts;
    columns[at + 3] = popularity.purchases;
  });
  return columns;
}

/** Where each event type's count is stored, in the order of the packed value after `ref`. */
export const COUNT_FIELDS = {
  impression: 'imp',
  click: 'clk',
  add_to_cart: 'cart',
  purchase: 'buy',
} as const satisfies Record<EventType, string>;

/** An `item-pop:{itemId}` value: counts valid at `ref` (ms). */
export interface StoredPopularity {
  readonly ref: number;
  readonly imp: number;
  readonly clk: number;
  readonly cart: number;
  readonly buy: number;
}

export function packPopularity(stored: StoredPopularity): string {
  return `${stored.ref},${stored.imp},${stored.clk},${stored.cart},${stored.buy}`;
}

/** Parses an `item-pop:{itemId}` value (fields the value lacks read as 0). */
export function parsePopularity(packed: string): StoredPopularity {
  const fields = packed.split(',');
  const field = (i: number) => Number(fields.at(i) ?? 0);
  return { ref: field(0), imp: field(1), clk: field(2), cart: field(3), buy: field(4) };
}

/** The items a `pop-changes` entry's `v` field carries, with their new values. */
export function parsePopularityChanges(value: string): [string, StoredPopularity][] {
  return value.split('\n').map((line) => {
    const tab = line.indexOf('\t');
    return [line.slice(0, tab), parsePopularity(line.slice(tab + 1))];
  });
}

/**
 * The decay: a count recorded at `fromMs` is worth `decay(fromMs, toMs)` of itself at `toMs`,
 * halving every half-life. The exponent is clamped at ±256 half-lives: an event from a clock far
 * off (stored before ingest refused such times) weighs at most 2^256, so even sums of billions of
 * them stay finite, and PostgreSQL never raises a float8 underflow or overflow.
 */
export function decay(fromMs: number, toMs: number, halfLifeMs: number): number {
  return 2 ** clampExponent((fromMs - toMs) / halfLifeMs);
}

const MAX_EXPONENT = 256;

/**
 * Events older than this many half-lives weigh under 2^-30 (about 1e-9) of a new one: the
 * PostgreSQL fallback leaves them out, so its cost grows with the half-life, not with how long
 * `events` is kept (partitions outside the horizon are not read).
 */
export const POPULARITY_HORIZON_HALF_LIVES = 30;

function clampExponent(exponent: number): number {
  return Math.min(MAX_EXPONENT, Math.max(-MAX_EXPONENT, exponent));
}

/** `decay` in Lua; the arguments are Lua expressions (numbers, ms). */
export function decayLua(from: string, to: string, halfLife: string): string {
  return `2 ^ math.min(${MAX_EXPONENT}, math.max(-${MAX_EXPONENT}, (${from} - ${to}) / ${halfLife}))`;
}

/** `decay` in SQL; `from` and `to` are timestamptz expressions, `halfLifeMs` a number. */
export function decaySql(from: string, to: string, halfLifeMs: string): string {
  return `power(2::float8, least(${MAX_EXPONENT}, greatest(-${MAX_EXPONENT}, extract(epoch FROM ${from} - ${to})::float8 * 1000 / ${halfLifeMs}::float8)))`;
}

/** How much each kind of event counts towards an item's engagement (popularity and `pop-rank`). */
export const ENGAGEMENT_WEIGHTS = {
  impression: 0,
  click: 1,
  add_to_cart: 3,
  purchase: 5,
} as const satisfies Record<EventType, number>;

/** An item's engagement from its four (decayed) counts. */
export function engagementOf(
  impressions: number,
  clicks: number,
  addToCarts: number,
  purchases: number,
): number {
  return (
    ENGAGEMENT_WEIGHTS.impression * impressions +
    ENGAGEMENT_WEIGHTS.click * clicks +
    ENGAGEMENT_WEIGHTS.add_to_cart * addToCarts +
    ENGAGEMENT_WEIGHTS.purchase * purchases
  );
}

/** `engagementOf` in Lua over the stored counts (Lua expressions, in COUNT_FIELDS order). */
export function engagementLua(imp: string, clk: string, cart: string, buy: string): string {
  const w = ENGAGEMENT_WEIGHTS;
  return `${imp} * ${w.impression} + ${clk} * ${w.click} + ${cart} * ${w.add_to_cart} + ${buy} * ${w.purchase}`;
}

/** The engagement weight of an `events` row in SQL (the row's `type` column). */
export const ENGAGEMENT_WEIGHT_SQL = `CASE type ${Object.entries(ENGAGEMENT_WEIGHTS)
  .map(([type, weight]) => `WHEN '${type}' THEN ${weight}`)
  .join(' ')} ELSE 0 END`;

/** Stored counts brought forward to `nowMs`. */
export function popularityAt(
  stored: StoredPopularity,
  nowMs: number,
  halfLifeMs: number,
): ItemPopularity {
  const scale = decay(stored.ref, nowMs, halfLifeMs);
  return {
    impressions: stored.imp * scale,
    clicks: stored.clk * scale,
    addToCarts: stored.cart * scale,
    purchases: stored.buy * scale,
  };
}

/** What the online state needs of a stored event. */
export interface OnlineEvent {
  readonly eventId: string;
  readonly type: EventType;
  readonly userId: string;
  readonly itemId: string;
  readonly ts: Date;
}

/** What one batch of newly stored events changes in the online state. */
export interface OnlineDelta {
  readonly users: readonly {
    readonly userId: string;
    /** score (ms), member pairs for the recent list. */
    readonly recent: readonly (readonly [number, string])[];
    readonly interactions: number;
  }[];
  /** Per item, the counts the batch adds, valid at `ref` (its newest event in the batch). */
  readonly items: readonly ({ readonly itemId: string } & StoredPopularity)[];
  readonly events: number;
}

/** Aggregates events per user and per item, decaying each increment to the item's newest event. */
export function onlineDelta(events: readonly OnlineEvent[], halfLifeMs: number): OnlineDelta {
  const users = new Map<
    string,
    { userId: string; recent: [number, string][]; interactions: number }
  >();
  const refs = new Map<string, number>();
  for (const event of events) {
    const ts = event.ts.getTime();
    refs.set(event.itemId, Math.max(refs.get(event.itemId) ?? ts, ts));
    if (!isInteraction(event.type)) continue;
    let user = users.get(event.userId);
    if (user === undefined) {
      user = { userId: event.userId, recent: [], interactions: 0 };
      users.set(event.userId, user);
    }
    user.recent.push([
      ts,
      encodeRecent({ type: event.type, itemId: event.itemId, ts, eventId: event.eventId }),
    ]);
    user.interactions++;
  }
  const items = new Map<
    string,
    { itemId: string; ref: number; imp: number; clk: number; cart: number; buy: number }
  >();
  for (const event of events) {
    const ref = refs.get(event.itemId) ?? 0;
    let item = items.get(event.itemId);
    if (item === undefined) {
      item = { itemId: event.itemId, ref, imp: 0, clk: 0, cart: 0, buy: 0 };
      items.set(event.itemId, item);
    }
    item[COUNT_FIELDS[event.type]] += decay(event.ts.getTime(), ref, halfLifeMs);
  }
  return { users: [...users.values()], items: [...items.values()], events: events.length };
}
