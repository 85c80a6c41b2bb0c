import { formatTable, parseFlags } from './cli-command';

describe('parseFlags', () => {
  it('reads values, inline values, booleans and positionals', () => {
    const parsed = parseFlags([
      'produce',
      '--topic',
      'user.events',
      '--file=a.jsonl',
      'x',
      '--all',
    ]);
    expect(parsed._).toEqual(['produce', 'x']);
    expect(parsed.flags.get('topic')).toBe('user.events');
    expect(parsed.flags.get('file')).toBe('a.jsonl');
    expect(parsed.flags.get('all')).toBe(true);
  });
});

describe('formatTable', () => {
  it('pads columns to the widest cell and right-aligns numeric ones', () => {
    expect(
      formatTable(
        ['arm', 'impressions', 'ctr'],
        [
          ['control', 1200, '4.10%'],
          ['new', 35, '12.00%'],
        ],
      ),
    ).toBe(
      [
        'arm      impressions  ctr',
        'control         1200  4.10%',
        'new               35  12.00%',
      ].join('\n'),
    );
  });
});
