import { Writable } from 'node:stream';
import pino from 'pino';
import { chooseLogFormat, prettyStream, WarningThrottle } from './logger';

describe('chooseLogFormat', () => {
  it.each([
    ['auto', true, 'pretty'],
    ['auto', false, 'json'],
    // A stdout that is a pipe or file has no isTTY at all.
    ['auto', undefined, 'json'],
    ['json', true, 'json'],
    ['pretty', false, 'pretty'],
    ['pretty', undefined, 'pretty'],
  ] as const)('LOG_FORMAT=%s, stdout a terminal: %s -> %s', (format, isTTY, expected) => {
    expect(chooseLogFormat(format, isTTY)).toBe(expected);
  });
});

describe('prettyStream', () => {
  it('writes one readable line per record; an error adds its stack below', async () => {
    let written = '';
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        written += chunk.toString();
        done();
      },
    });
    const logger = pino({ base: { service: 'recsys', role: 'api' } }, prettyStream(sink, false));
    logger.info({ url: 'http://127.0.0.1:3000/graphql' }, 'ready');
    logger.warn({ attempt: 2 }, 'retrying');
    logger.error({ err: new Error('boom') }, 'failed');
    await new Promise((resolve) => setImmediate(resolve));

    const lines = written.trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: ready \{"role":"api","url":"http:\/\/127.0.0.1:3000\/graphql"\}$/,
    );
    expect(lines[1]).toMatch(/\] WARN: retrying \{"role":"api","attempt":2\}$/);
    expect(lines[2]).toMatch(/\] ERROR: failed \{"role":"api"\}$/);
    expect(lines.slice(3).join('\n')).toMatch(/err: \{[\s\S]*Error: boom\n\s+at /);
    expect(written).not.toMatch(/"(pid|hostname|service)"/);
  });
});

describe('WarningThrottle', () => {
  it('allows one warning per interval, the first at once', () => {
    const throttle = new WarningThrottle(10_000);
    expect([0, 1, 9_999, 10_000, 15_000, 20_001].map((now) => throttle.allows(now))).toEqual([
      true,
      false,
      false,
      true,
      false,
      true,
    ]);
  });
});
