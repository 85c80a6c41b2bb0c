import type { ServedSlate } from './served-slate';
import {
  decodeServedSlate,
  encodeServedSlate,
  MAX_SERVED_SLATE_BYTES,
  ServedSlateRow,
} from './served-slate.codec';

const SERVED_AT = Date.UTC(2025, 0, 2, 3, 4, 5, 678);

function slate(overrides: Partial<ServedSlate> = {}): ServedSlate {
  return {
    requestId: 'req-1',
    userId: 'user-1',
    operation: 'rank',
    servedAt: SERVED_AT,
    modelVersion: '7',
    profile: 'default',
    experiment: null,
    candidates: 3,
    features: ['model', 'popularity'],
    itemIds: ['a', 'b', 'c'],
    scores: new Float64Array([0.9, 0.5, 0.25]),
    values: new Float64Array([6.5, 0.1, Number.NaN, 0.2, -1, Number.POSITIVE_INFINITY]),
    ...overrides,
  };
}

/** Base64 of little-endian float32, as the wire carries numbers. */
function floats(...values: number[]): string {
  return Buffer.from(new Float32Array(values).buffer).toString('base64');
}

function decoded(value: unknown): ServedSlateRow {
  const result = decodeServedSlate(Buffer.from(JSON.stringify(value)));
  if (!result.ok)
    throw new Error(`rejected: ${result.rejection.field}: ${result.rejection.reason}`);
  return result.value;
}

function rejection(value: unknown, raw?: Buffer) {
  const result = decodeServedSlate(raw ?? Buffer.from(JSON.stringify(value)));
  if (result.ok) throw new Error('expected a rejection');
  return result.rejection;
}

/** A valid wire value, as the recorder writes it. */
function wire(depth = 50, overrides: Partial<ServedSlate> = {}): Record<string, unknown> {
  return JSON.parse(encodeServedSlate(slate(overrides), depth)) as Record<string, unknown>;
}

describe('served-slate wire format', () => {
  it('writes the contract: ids in served order, numbers as base64 little-endian float32', () => {
    expect(wire()).toEqual({
      schemaVersion: 1,
      requestId: 'req-1',
      userId: 'user-1',
      operation: 'rank',
      servedAt: '2025-01-02T03:04:05.678Z',
      modelVersion: '7',
      profile: 'default',
      experimentId: null,
      arm: null,
      candidates: 3,
      features: ['model', 'popularity'],
      itemIds: ['a', 'b', 'c'],
      scores: floats(0.9, 0.5, 0.25),
      values: floats(6.5, 0.1, Number.NaN, 0.2, -1, Number.POSITIVE_INFINITY),
    });
  });

  it('round-trips through the parser at float32 precision, NaN and infinities kept', () => {
    expect(decoded(wire())).toEqual({
      requestId: 'req-1',
      userId: 'user-1',
      operation: 'rank',
      servedAt: new Date(SERVED_AT),
      modelVersion: '7',
      profile: 'default',
      experimentId: null,
      arm: null,
      candidates: 3,
      features: ['model', 'popularity'],
      itemIds: ['a', 'b', 'c'],
      scores: [0.9, 0.5, 0.25].map(Math.fround),
      values: [6.5, 0.1, Number.NaN, 0.2, -1, Number.POSITIVE_INFINITY].map(Math.fround),
    });
  });

  it('carries the experiment and arm that served it; a slate of v1 without them is outside one', () => {
    const row = decoded(wire(10, { experiment: { id: '4', arm: 'treatment' } }));
    expect(row).toMatchObject({ experimentId: '4', arm: 'treatment' });
    const { experimentId, arm, ...before } = wire();
    expect([experimentId, arm]).toEqual([null, null]);
    expect(decoded(before)).toMatchObject({ experimentId: null, arm: null });
    expect(rejection({ ...wire(), experimentId: '4' })).toEqual({
      field: 'arm',
      reason: 'must be given exactly when experimentId is',
    });
  });

  it('cuts to the depth but keeps the candidate count', () => {
    const row = decoded(wire(2, { candidates: 120 }));
    expect(row.candidates).toBe(120);
    expect(row.itemIds).toEqual(['a', 'b']);
    expect(row.scores).toEqual([0.9, 0.5].map(Math.fround));
    expect(row.values).toEqual([6.5, 0.1, Number.NaN, 0.2].map(Math.fround));
  });

  it('escapes ids and names, and writes a null model version', () => {
    const row = decoded(
      wire(10, {
        requestId: 'r"\\1',
        userId: 'ü-ser "quoted"',
        modelVersion: null,
        features: ['feature:a"b'],
        itemIds: ['i"1', 'i\\2'],
        scores: new Float64Array([1, 2]),
        values: new Float64Array([3, 4]),
        candidates: 2,
      }),
    );
    expect(row).toMatchObject({
      requestId: 'r"\\1',
      userId: 'ü-ser "quoted"',
      modelVersion: null,
      features: ['feature:a"b'],
      itemIds: ['i"1', 'i\\2'],
      values: [3, 4],
    });
  });

  it('stays valid JSON for a slate that breaks the contract, so the consumer names the fault', () => {
    const value = wire(10, { servedAt: Number.NaN, values: new Float64Array([1, 2, 3]) });
    expect(value.servedAt).toBeNull();
    expect(rejection(value)).toMatchObject({ field: 'servedAt', reason: /ISO-8601/ });
    expect(rejection({ ...value, servedAt: SERVED_AT })).toEqual({
      field: 'values',
      reason: 'must hold 6 float32 values, 2 per item (got 3)',
    });
  });

  it.each([
    ['bad JSON', undefined, Buffer.from('{"requestId":'), 'value', /invalid JSON/],
    ['empty message', undefined, Buffer.alloc(0), 'value', /empty/],
    ['not an object', [1], undefined, 'value', /JSON object/],
    ['missing requestId', { requestId: undefined }, undefined, 'requestId', /^required$/],
    ['empty userId', { userId: '' }, undefined, 'userId', /empty/],
    [
      'unknown operation',
      { operation: 'search' },
      undefined,
      'operation',
      /one of rank, recommend/,
    ],
    ['bad servedAt', { servedAt: 'yesterday' }, undefined, 'servedAt', /ISO-8601/],
    ['numeric model version', { modelVersion: 7 }, undefined, 'modelVersion', /model version id/],
    ['non-digit model version', { modelVersion: 'v7' }, undefined, 'modelVersion', /digits/],
    ['empty profile', { profile: '' }, undefined, 'profile', /empty/],
    ['fractional candidates', { candidates: 2.5 }, undefined, 'candidates', /integer/],
    [
      'too few candidates',
      { candidates: 2 },
      undefined,
      'candidates',
      /at least the number of items \(3\)/,
    ],
    ['features not a list', { features: 'model' }, undefined, 'features', /array/],
    [
      'a duplicate feature',
      { features: ['model', 'model'] },
      undefined,
      'features.1',
      /duplicate of features.0/,
    ],
    ['a missing item id', { itemIds: ['a', 7, 'c'] }, undefined, 'itemIds.1', /string/],
    [
      'a control character in an item id',
      { itemIds: ['a', 'b\u0007c', 'c'] },
      undefined,
      'itemIds.1',
      /control/,
    ],
    ['scores as numbers', { scores: [0.9, 0.5, 0.25] }, undefined, 'scores', /base64/],
    ['scores not base64', { scores: 'not base64!' }, undefined, 'scores', /base64/],
    [
      'a score short',
      { scores: floats(0.9, 0.5) },
      undefined,
      'scores',
      /must hold 3 float32 values, one per item \(got 2\)/,
    ],
    [
      'a value short',
      { values: floats(1, 2, 3, 4, 5) },
      undefined,
      'values',
      /must hold 6 float32 values, 2 per item \(got 5\)/,
    ],
    [
      'values cut mid-float',
      { values: Buffer.alloc(6).toString('base64') },
      undefined,
      'values',
      /\(got 1.5\)/,
    ],
    ['a future schema', { schemaVersion: 2 }, undefined, 'schemaVersion', /unsupported/],
    ['a control character in an id', { userId: 'u\u0007' }, undefined, 'userId', /control/],
    ['U+0000 in the profile', { profile: 'p\u0000' }, undefined, 'profile', /U\+0000/],
  ])('rejects %s, naming the field', (_name, change, raw, field, reason) => {
    const value = Array.isArray(change) ? change : { ...wire(), ...change };
    const found = rejection(value, raw);
    expect(found.field).toBe(field);
    expect(found.reason).toMatch(reason);
  });

  it('rejects a value over the size limit and more items than any depth', () => {
    const huge = Buffer.alloc(MAX_SERVED_SLATE_BYTES + 1, 0x20);
    expect(rejection(undefined, huge)).toMatchObject({
      field: 'value',
      reason: /exceeds the limit/,
    });
    const ids = Array.from({ length: 1001 }, (_, index) => `i${index}`);
    expect(rejection({ ...wire(), candidates: 2000, itemIds: ids })).toMatchObject({
      field: 'itemIds',
      reason: /at most 1000 items/,
    });
  });

  it('accepts an empty slate and a slate without features', () => {
    expect(decoded(wire(0)).itemIds).toEqual([]);
    expect(decoded(wire(50, { features: [], values: new Float64Array(0) })).values).toEqual([]);
  });
});
