import { Impression } from '../dataset/dataset';
import { combinerSlates } from '../combiner-stage';
import { servedFactsAt, withServedInputs } from './served-ranking';

const HOUR = 3_600_000;
const impression = (id: string, time: number, clicked: string, shown: string[]): Impression => ({
  id,
  userId: 'u',
  time,
  history: [],
  clicked: [clicked],
  notClicked: shown,
});

describe('the serving features at each impression', () => {
  const train = [
    impression('t1', 0, 'a', ['b']),
    impression('t2', 2 * HOUR, 'b', ['a']),
    impression('t3', 10 * HOUR, 'a', ['c']),
  ];
  const dev = impression('d1', 5 * HOUR, 'c', ['a', 'b']);

  it('counts only train impressions strictly before, decayed to that moment', () => {
    const facts = servedFactsAt(train, [dev, train[1]], 2 * HOUR).get('d1');
    // At 5 h: t1 (0 h) and t2 (2 h) seen, t3 (10 h) not yet; half-life 2 h.
    // Four counts per candidate (impressions, clicks, carts, purchases), in the order c, a, b.
    const counts = Array.from(facts?.popularity ?? []);
    expect(counts.slice(0, 4)).toEqual([0, 0, 0, 0]);
    expect(counts[4]).toBeCloseTo(0.5 ** 2.5 + 0.5 ** 1.5, 10);
    expect(counts[5]).toBeCloseTo(0.5 ** 2.5, 10);
    expect(counts[9]).toBeCloseTo(0.5 ** 1.5, 10);
    // Created when first shown; never shown: unknown.
    expect(Number.isNaN(facts?.createdAtMs[0])).toBe(true);
    expect(facts?.createdAtMs[1]).toBe(0);
    // The earlier train impression sees only t1.
    const early = servedFactsAt(train, [train[1]], 2 * HOUR).get('t2');
    expect(early?.popularity[1]).toBe(0);
    expect(early?.popularity[5]).toBeCloseTo(0.5, 10);
  });

  it('become combiner slates: model score first, then the served inputs, clicked first', () => {
    const facts = servedFactsAt(train, [dev], 2 * HOUR);
    const [slate] = combinerSlates(withServedInputs([dev], facts), (_, ids) =>
      ids.map((id) => (id === 'b' ? -1e30 : 1)),
    );
    expect(Array.from(slate.clicked)).toEqual([1, 0, 0]);
    expect(Array.from(slate.positions)).toEqual([0, 0, 0]);
    // Five inputs per item; b has no vector, so no model score.
    expect(slate.inputs[0]).toBe(1);
    expect(Number.isNaN(slate.inputs[2 * 5])).toBe(true);
    // c was never shown before: popularity, recency and price inputs 0, ctr the 5 % prior.
    expect(Array.from(slate.inputs.subarray(1, 5))).toEqual([0, 0.05, 0, 0]);
  });
});
