import {
  aheadOfTime,
  catalogItemSchema,
  decode,
  fastUserEvent,
  userEventSchema,
} from './ingest.schemas';

const MAX = 1024;
const valid = {
  eventId: 'e1',
  type: 'click',
  userId: 'u1',
  itemId: 'i1',
  timestamp: '2025-01-02T03:04:05Z',
};

function reject(value: unknown, raw?: Buffer) {
  const bytes = raw ?? Buffer.from(JSON.stringify(value));
  const decoded = decode(userEventSchema, bytes, MAX);
  if (decoded.ok) throw new Error('expected a rejection');
  return decoded.rejection;
}

describe('user.events validation', () => {
  it('accepts a valid event, ISO or epoch ms, and defaults schemaVersion to 1', () => {
    const iso = decode(userEventSchema, Buffer.from(JSON.stringify(valid)), MAX);
    const epoch = decode(
      userEventSchema,
      Buffer.from(JSON.stringify({ ...valid, timestamp: 1735787045000, position: 0 })),
      MAX,
    );
    expect(iso).toMatchObject({ ok: true, value: { schemaVersion: 1, type: 'click' } });
    expect(iso.ok && iso.value.timestamp.toISOString()).toBe('2025-01-02T03:04:05.000Z');
    expect(epoch.ok && epoch.value.timestamp.toISOString()).toBe('2025-01-02T03:04:05.000Z');
  });

  it.each([
    ['bad JSON', undefined, Buffer.from('{"eventId":'), 'value', /invalid JSON/],
    ['invalid UTF-8', undefined, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 'value', /UTF-8/],
    ['empty message', undefined, Buffer.alloc(0), 'value', /empty/],
    [
      'oversized',
      { ...valid, pad: 'x'.repeat(MAX) },
      undefined,
      'value',
      /exceeds the limit of 1024/,
    ],
    ['not an object', [1, 2], undefined, 'value', /JSON object/],
    ['missing eventId', { ...valid, eventId: undefined }, undefined, 'eventId', /required/],
    ['empty userId', { ...valid, userId: '' }, undefined, 'userId', /empty/],
    ['numeric itemId', { ...valid, itemId: 42 }, undefined, 'itemId', /string/],
    ['unknown type', { ...valid, type: 'like' }, undefined, 'type', /must be one of impression/],
    ['bad timestamp', { ...valid, timestamp: 'yesterday' }, undefined, 'timestamp', /ISO-8601/],
    ['fractional epoch', { ...valid, timestamp: 1.5 }, undefined, 'timestamp', /integer/],
    ['negative position', { ...valid, position: -1 }, undefined, 'position', /greater than/],
    ['context not object', { ...valid, context: 'x' }, undefined, 'context', /object/],
    ['future schema', { ...valid, schemaVersion: 2 }, undefined, 'schemaVersion', /unsupported/],
    ['control character in an id', { ...valid, userId: 'u\u0007' }, undefined, 'userId', /control/],
    ['U+0000 in an id', { ...valid, itemId: 'i\u0000' }, undefined, 'itemId', /control|U\+0000/],
    [
      'U+0000 in context',
      { ...valid, context: { page: 'a\u0000' } },
      undefined,
      'context.page',
      /U\+0000/,
    ],
    [
      'context nested too deeply',
      undefined,
      Buffer.from(
        JSON.stringify(valid).replace(/}$/, `,"context":${'{"a":'.repeat(40)}1${'}'.repeat(41)}`),
      ),
      `context${'.a'.repeat(32)}`,
      /deeper than 32/,
    ],
  ])('rejects %s, naming the field', (_name, value, raw, field, reason) => {
    const rejection = reject(value, raw);
    expect(rejection.field).toBe(field);
    expect(rejection.reason).toMatch(reason);
  });
});

describe('catalog.items validation', () => {
  it('needs a title unless the item is deleted', () => {
    const missing = decode(catalogItemSchema, Buffer.from('{"itemId":"i1"}'), MAX);
    const deleted = decode(catalogItemSchema, Buffer.from('{"itemId":"i1","deleted":true}'), MAX);
    expect(missing).toEqual({ ok: false, rejection: { field: 'title', reason: 'required' } });
    expect(deleted.ok).toBe(true);
  });

  it('rejects a negative price and non-string tags', () => {
    const price = decode(
      catalogItemSchema,
      Buffer.from('{"itemId":"i","title":"t","price":-1}'),
      MAX,
    );
    const tags = decode(
      catalogItemSchema,
      Buffer.from('{"itemId":"i","title":"t","tags":[1]}'),
      MAX,
    );
    expect(price.ok ? null : price.rejection.field).toBe('price');
    expect(tags.ok ? null : tags.rejection.field).toBe('tags.0');
  });

  it('rejects U+0000 in text fields (PostgreSQL cannot store it)', () => {
    const item = decode(
      catalogItemSchema,
      Buffer.from(JSON.stringify({ itemId: 'i', title: 't', description: 'a\u0000' })),
      MAX,
    );
    expect(item).toEqual({
      ok: false,
      rejection: { field: 'description', reason: 'must not contain U+0000' },
    });
  });
});

describe('fastUserEvent', () => {
  const base = { eventId: 'e', type: 'click', userId: 'u', itemId: 'i', timestamp: 1735787045000 };
  it.each([
    base,
    { ...base, timestamp: '2025-01-02T03:04:05.123+01:00', requestId: 'r', position: 3 },
    { ...base, context: { page: 'home' }, schemaVersion: 1, extra: true },
    { ...base, eventId: ' padded ' },
    { ...base, type: 'like' },
    { ...base, timestamp: 'soon' },
    { ...base, position: 1.5 },
    { ...base, context: [] },
    { ...base, schemaVersion: 2 },
    { ...base, requestId: '' },
    { ...base, userId: 'u\n1' },
  ])('agrees with the zod schema on %j', (input) => {
    const fast = fastUserEvent(input);
    const slow = userEventSchema.safeParse(input);
    if (fast !== undefined) expect(slow).toEqual({ success: true, data: fast });
    else if (slow.success) expect(JSON.stringify(input)).toContain(' padded ');
  });
});

describe('aheadOfTime', () => {
  const broker = Date.UTC(2026, 0, 1);
  it('names the first time further ahead of the broker than the skew allows', () => {
    expect(aheadOfTime({ timestamp: new Date(broker + 60_000) }, broker, 300_000)).toBeUndefined();
    expect(
      aheadOfTime({ updatedAt: undefined, createdAt: new Date(broker + 300_001) }, broker, 300_000),
    ).toEqual({
      field: 'createdAt',
      reason: '300001 ms ahead of the broker time (INGEST_MAX_CLOCK_SKEW_MS allows 300000)',
    });
    // Far past is fine: it only decays to nearly nothing.
    expect(aheadOfTime({ timestamp: new Date(Date.UTC(2000, 0, 1)) }, broker, 0)).toBeUndefined();
  });
});
