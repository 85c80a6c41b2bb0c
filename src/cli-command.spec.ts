import { parseFlags } from './cli-command';

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
