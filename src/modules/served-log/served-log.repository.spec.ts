import { dayOf } from '../../common/daily-partitions';
import { partitionName, realArrayLiteral, textArrayLiteral } from './served-log.repository';

describe('served_slates SQL helpers', () => {
  it('names the partition of a time by its UTC day', () => {
    expect(partitionName(dayOf(new Date('2025-03-09T23:59:59.999Z')))).toBe(
      'served_slates_p20250309',
    );
    expect(partitionName(dayOf(new Date('2025-03-10T00:00:00.000Z')))).toBe(
      'served_slates_p20250310',
    );
  });

  it('writes text array literals with every element quoted and escaped', () => {
    expect(textArrayLiteral(['a', 'b c', 'q"uote', 'back\\slash', '', 'NULL', '{x,y}'])).toBe(
      '{"a","b c","q\\"uote","back\\\\slash","","NULL","{x,y}"}',
    );
    expect(textArrayLiteral([])).toBe('{}');
  });

  it('writes real array literals rounded to 32 bits, out-of-range values as infinities or 0', () => {
    expect(realArrayLiteral([0.5, -2, Number.NaN, 1e300, -1e300, 1e-60, 0.1])).toBe(
      `{0.5,-2,NaN,Infinity,-Infinity,0,${String(Math.fround(0.1))}}`,
    );
  });
});
