import { parsePopularity, popularityAt } from './online-state.keys';

describe('item popularity values', () => {
  it('parses the packed value the apply script writes', () => {
    expect(parsePopularity('1764370000000,12.5,3.0000000000000004,0.5,0')).toEqual({
      ref: 1_764_370_000_000,
      imp: 12.5,
      clk: 3.0000000000000004,
      cart: 0.5,
      buy: 0,
    });
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
});
