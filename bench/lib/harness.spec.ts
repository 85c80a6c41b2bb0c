import { formatTable } from './harness';

describe('formatTable', () => {
  it('aligns columns as a Markdown table, numbers right-aligned', () => {
    const table = formatTable([
      { server: 'mercurius', 'req/s': 12345, p99: 2.5 },
      { server: 'apollo', 'req/s': 4321, p99: 11 },
    ]);
    expect(table.split('\n')).toEqual([
      '| server    |  req/s |  p99 |',
      '|:----------|-------:|-----:|',
      '| mercurius | 12,345 | 2.50 |',
      '| apollo    |  4,321 |   11 |',
    ]);
  });

  it('says when there is nothing to show', () => {
    expect(formatTable([])).toBe('(no rows)');
  });
});
