import { KEY_SLOTS, keySlot } from '../../common/key-slot';
import {
  decay,
  decodeRecent,
  engagementOf,
  ENGAGEMENT_WEIGHT_SQL,
  onlineDelta,
  onlineKeys,
  packPopularity,
  parsePopularity,
  popularityAt,
  USER_BUCKETS,
  USER_TAGS,
  userBucket,
} from './online-state.schema';

const HOUR = 3_600_000;

describe('item popularity values', () => {
  it('parses the packed value the apply script writes', () => {
    expect(parsePopularity('1764370000000,12.5,3.0000000000000004,0.5,0')).toEqual({
      ref: 1_764_370_000_000,
      imp: 12.5,
      clk: 3.0000000000000004,
      cart: 0.5,
      buy: 0,
    });
    const stored = { ref: 5, imp: 1.5, clk: 2, cart: 0, buy: 0.25 };
    expect(parsePopularity(packPopularity(stored))).toEqual(stored);
  });

  it('decays every count by the time since ref: halves per half-life', () => {
    const stored = parsePopularity('1000,8,4,2,1');
    expect(popularityAt(stored, 1000, 500)).toEqual({
      impressions: 8,
      clicks: 4,
      addToCarts: 2,
      purchases: 1,
    });
    expect(popularityAt(stored, 2000, 500)).toEqual({
      impressions: 2,
      clicks: 1,
      addToCarts: 0.5,
      purchases: 0.25,
    });
  });

  it('clamps the decay exponent, so a clock far off never gives Infinity or 0', () => {
    expect(decay(0, 1, 1)).toBe(0.5);
    expect(Number.isFinite(decay(1e15, 0, 1))).toBe(true);
    expect(decay(0, 1e15, 1)).toBeGreaterThan(0);
  });

  it('weighs engagement by event type, impressions not at all', () => {
    expect(engagementOf(100, 1, 1, 1)).toBe(9);
    expect(ENGAGEMENT_WEIGHT_SQL).toBe(
      "CASE type WHEN 'impression' THEN 0 WHEN 'click' THEN 1 WHEN 'add_to_cart' THEN 3 WHEN 'purchase' THEN 5 ELSE 0 END",
    );
  });
});

describe('onlineDelta', () => {
  const event = (
    eventId: string,
    type: 'impression' | 'click',
    userId: string,
    itemId: string,
    ts: number,
  ) => ({ eventId, type, userId, itemId, ts: new Date(ts) });

  it('aggregates per user and item, decaying increments to the newest event of the item', () => {
    const t = Date.UTC(2025, 0, 1);
    const delta = onlineDelta(
      [
        event('e1', 'impression', 'u1', 'i1', t),
        event('e2', 'click', 'u1', 'i1', t + HOUR),
        event('e3', 'impression', 'u2', 'i1', t + HOUR),
      ],
      HOUR,
    );
    expect(delta.users).toHaveLength(1);
    expect(delta.users[0]?.interactions).toBe(1);
    expect(decodeRecent(delta.users[0]?.recent[0]?.[1] ?? '')).toEqual({
      type: 'click',
      itemId: 'i1',
      ts: t + HOUR,
      eventId: 'e2',
    });
    expect(delta.items).toEqual([
      { itemId: 'i1', ref: t + HOUR, imp: 1.5, clk: 1, cart: 0, buy: 0 },
    ]);
  });
});

/** The slot ranges `redis-cli --cluster create` assigns to `masters` masters (its own arithmetic). */
function createdSlotRanges(masters: number): [number, number][] {
  const perMaster = KEY_SLOTS / masters;
  const ranges: [number, number][] = [];
  let first = 0;
  for (let i = 0; i < masters; i++) {
    const last =
      i === masters - 1
        ? KEY_SLOTS - 1
        : Math.max(first, Math.round(i * perMaster + perMaster - 1));
    ranges.push([first, last]);
    first = last + 1;
  }
  return ranges;
}

describe('key layout on a Redis Cluster', () => {
  const keys = onlineKeys('recsys:');
  const userIds = Array.from({ length: 2000 }, (_, i) => `user-${i}`);
  const itemIds = Array.from({ length: 500 }, (_, i) => `item-${i}`);

  it("puts each script's keys in one slot: a bucket's users with its marker, every item key", () => {
    for (const userId of userIds) {
      const bucket = userBucket(userId);
      const slot = keySlot(keys.userApplied(bucket, 'token'));
      expect(keySlot(keys.recent(userId))).toBe(slot);
      expect(keySlot(keys.interest(userId))).toBe(slot);
    }
    const itemSlots = new Set([
      keySlot(keys.itemsApplied('token')),
      keySlot(keys.popularityRank),
      keySlot(keys.popularityChanges),
      ...itemIds.map((itemId) => keySlot(keys.popularity(itemId))),
    ]);
    expect(itemSlots.size).toBe(1);
  });

  it('spreads users evenly over the buckets, and the buckets over the slot space', () => {
    const perBucket = new Array<number>(USER_BUCKETS).fill(0);
    for (const userId of userIds) perBucket[userBucket(userId)]++;
    expect(Math.min(...perBucket)).toBeGreaterThan((userIds.length / USER_BUCKETS) * 0.8);
    expect(Math.max(...perBucket)).toBeLessThan((userIds.length / USER_BUCKETS) * 1.2);
    // Each master of a cluster made by `redis-cli --cluster create` holds USER_BUCKETS / N
    // buckets (rounded), for N masters up to USER_BUCKETS.
    for (let masters = 1; masters <= USER_BUCKETS; masters++) {
      const ranges = createdSlotRanges(masters);
      const held = ranges.map(
        ([first, last]) =>
          USER_TAGS.filter((tag) => keySlot(tag) >= first && keySlot(tag) <= last).length,
      );
      expect(Math.min(...held)).toBe(Math.floor(USER_BUCKETS / masters));
      expect(Math.max(...held)).toBe(Math.ceil(USER_BUCKETS / masters));
    }
    expect(new Set(USER_TAGS.map((tag) => keySlot(tag))).size).toBe(USER_BUCKETS);
    expect(USER_TAGS.every((tag) => /^\{u[0-9]+(\.[0-9]+)?\}$/.test(tag))).toBe(true);
  });

  it('keeps the stored key format stable', () => {
    expect(keys.recent('user-1')).toBe(`recsys:${USER_TAGS[userBucket('user-1')]}recent:user-1`);
    expect(keys.popularity('i-1')).toBe('recsys:{items}item-pop:i-1');
    expect(keys.popularityChanges).toBe('recsys:{items}pop-changes');
    // Stored keys carry these tags: a change would orphan every deployment's user keys.
    expect(USER_TAGS).toEqual([
      '{u0.696}',
      '{u1.470}',
      '{u2.719}',
      '{u3.82}',
      '{u4.245}',
      '{u5.218}',
      '{u6.4}',
      '{u7.397}',
      '{u8.669}',
      '{u9.91}',
      '{u10.957}',
      '{u11.411}',
      '{u12.183}',
      '{u13.57}',
      '{u14.224}',
      '{u15.279}',
    ]);
  });
});
