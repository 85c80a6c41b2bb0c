import { AlignedFeatures } from './catalog-features.service';

describe('AlignedFeatures', () => {
  it('reads back what each row was set to, NaN and undefined where unknown', () => {
    const aligned = new AlignedFeatures(3);
    aligned.set(0, {
      itemId: 'a',
      category: 'books',
      price: 12.5,
      createdAtMs: 1_700_000_000_000,
      deleted: false,
    });
    aligned.set(1, {
      itemId: 'b',
      category: undefined,
      price: undefined,
      createdAtMs: undefined,
      deleted: false,
    });
    expect([aligned.createdAtMs(0), aligned.price(0), aligned.category(0)]).toEqual([
      1_700_000_000_000,
      12.5,
      'books',
    ]);
    for (const row of [1, 2]) {
      expect(aligned.createdAtMs(row)).toBeNaN();
      expect(aligned.price(row)).toBeNaN();
      expect(aligned.category(row)).toBeUndefined();
    }
    aligned.set(0, undefined);
    expect(aligned.price(0)).toBeNaN();
  });
});
