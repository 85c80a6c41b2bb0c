import { CronParseError, parseCron } from './cron';

const at = (iso: string) => new Date(iso);
const next = (expression: string, after: string) =>
  parseCron(expression).next(at(after)).toISOString();

describe('parseCron', () => {
  it('fires on the next matching minute, strictly after the given time', () => {
    expect(next('*/15 * * * *', '2025-03-01T10:07:30Z')).toBe('2025-03-01T10:15:00.000Z');
    expect(next('*/15 * * * *', '2025-03-01T10:15:00Z')).toBe('2025-03-01T10:30:00.000Z');
    expect(next('0 * * * *', '2025-03-01T23:59:00Z')).toBe('2025-03-02T00:00:00.000Z');
  });

  it('handles lists, ranges and stepped ranges', () => {
    expect(next('5,40 9-17/4 * * *', '2025-03-01T09:06:00Z')).toBe('2025-03-01T09:40:00.000Z');
    expect(next('5,40 9-17/4 * * *', '2025-03-01T09:41:00Z')).toBe('2025-03-01T13:05:00.000Z');
    expect(next('5,40 9-17/4 * * *', '2025-03-01T17:41:00Z')).toBe('2025-03-02T09:05:00.000Z');
    expect(next('10/20 * * * *', '2025-03-01T09:31:00Z')).toBe('2025-03-01T09:50:00.000Z');
  });

  it('rolls over months and years, and skips days a month lacks', () => {
    expect(next('0 0 31 * *', '2025-04-01T00:00:00Z')).toBe('2025-05-31T00:00:00.000Z');
    expect(next('0 0 29 feb *', '2025-01-01T00:00:00Z')).toBe('2028-02-29T00:00:00.000Z');
    expect(next('@yearly', '2025-06-15T12:00:00Z')).toBe('2026-01-01T00:00:00.000Z');
  });

  it('reads weekday names, 7 as Sunday, and ORs the two day fields when both are set', () => {
    // 2025-03-01 is a Saturday.
    expect(next('30 2 * * mon-fri', '2025-03-01T00:00:00Z')).toBe('2025-03-03T02:30:00.000Z');
    expect(next('0 0 * * 7', '2025-03-01T00:00:00Z')).toBe('2025-03-02T00:00:00.000Z');
    expect(next('0 0 10 * mon', '2025-03-01T00:00:00Z')).toBe('2025-03-03T00:00:00.000Z');
    expect(next('0 0 2 * fri', '2025-03-01T00:00:00Z')).toBe('2025-03-02T00:00:00.000Z');
  });

  it.each([
    ['* * * *', 'expected 5 fields'],
    ['60 * * * *', 'minute: 60 is outside 0-59'],
    ['* 24 * * *', 'hour: 24 is outside'],
    ['*/0 * * * *', 'step "0" must be >= 1'],
    ['5-1 * * * *', 'reversed'],
    ['x * * * *', 'not a number'],
    ['0 0 30 feb *', 'never matches'],
  ])('rejects "%s"', (expression, reason) => {
    expect(() => parseCron(expression).next(at('2025-01-01T00:00:00Z'))).toThrow(CronParseError);
    expect(() => parseCron(expression).next(at('2025-01-01T00:00:00Z'))).toThrow(reason);
  });
});
