import {
  decay,
  decodeRecent,
  engagement,
  ENGAGEMENT_WEIGHT_SQL,
  onlineDelta,
  packPopularity,
  parsePopularity,
  popularityAt,
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
    expect(engagement({ impressions: 100, clicks: 1, addToCarts: 1, purchases: 1 })).toBe(9);
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
