import { parse } from 'graphql';
import { boundedLabels, operationLabel } from './graphql-hooks';

describe('operationLabel', () => {
  it('uses the operation name when given', () => {
    expect(operationLabel(parse('query Storefront { health { status } }'))).toBe('Storefront');
  });
  it('falls back to the first root field', () => {
    expect(operationLabel(parse('{ health { status } }'))).toBe('health');
  });
  it('ignores fragments placed before the operation', () => {
    expect(operationLabel(parse('fragment F on Health { status } { health { ...F } }'))).toBe(
      'health',
    );
  });
});

describe('boundedLabels', () => {
  it('keeps the first names and folds later new ones into "other"', () => {
    const label = boundedLabels(2);
    expect(['A', 'B', 'C', 'A', 'D', 'B'].map(label)).toEqual([
      'A',
      'B',
      'other',
      'A',
      'other',
      'B',
    ]);
  });
});
