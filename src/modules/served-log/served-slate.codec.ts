import { endianness } from 'node:os';
import { z } from 'zod';
import { MAX_SERVED_LOG_DEPTH } from '../../config/config';
import {
  Decoded,
  decode,
  idSchema,
  schemaVersionSchema,
  timestampSchema,
} from '../ingest/ingest.schemas';
import { SERVED_OPERATIONS, ServedOperation, ServedSlate } from './served-slate';

/** The newest wire version the consumer reads. */
export const SERVED_SLATE_SCHEMA_VERSION = 1;

/** The log's topics (unprefixed): slates keyed by user id, and what the consumer refused. */
export const SERVED_LOG_TOPICS = {
  slates: 'rank.served',
  deadLetters: 'rank.served.dlq',
} as const;

/**
 * Largest encoded slate, in bytes. Under the broker's default `message.max.bytes` (1 MiB) with
 * room for the record overhead; the recorder drops (and counts) a larger slate rather than fail
 * its whole send, and the consumer dead-letters one.
 */
export const MAX_SERVED_SLATE_BYTES = 1_000_000;

/** Most feature names a slate logs (built-in parts plus caller features). */
export const MAX_SERVED_FEATURES = 256;

const MAX_PROFILE_LENGTH = 200;
const MAX_FEATURE_NAME_LENGTH = 200;
const MAX_CANDIDATES = 2_147_483_647;

const LITTLE_ENDIAN = endianness() === 'LE';

/** `values[start, end)` as base64 of little-endian float32: the stored precision (real). */
function float32Base64(values: Float64Array, start: number, end: number): string {
  const floats = new Float32Array(values.subarray(start, end));
  const bytes = Buffer.from(floats.buffer, floats.byteOffset, floats.byteLength);
  if (!LITTLE_ENDIAN) bytes.swap32();
  return bytes.toString('base64');
}

/** Base64 of little-endian float32 back to numbers; undefined when not whole floats. */
function float32Values(base64: string): number[] | undefined {
  const bytes = Buffer.from(base64, 'base64');
  if (bytes.length % 4 !== 0) return undefined;
  // A copy: the decoded bytes may sit at an offset a Float32Array cannot view.
  const aligned = new Uint8Array(bytes);
  if (!LITTLE_ENDIAN) Buffer.from(aligned.buffer).swap32();
  return Array.from(new Float32Array(aligned.buffer));
}

/**
 * The wire JSON of a slate cut to its first `depth` items. Numbers travel as base64 float32, not
 * JSON numbers: formatting a double takes about 200 ns, 350 of them per slate (and the 9 KB they
 * made) cost more CPU than the `rank` itself; as float32 the slate is about 3 KB and encodes in a
 * few µs, at the precision `served_slates` stores. Total: whatever the slate holds, the result is
 * valid JSON, and what does not fit the contract is for the consumer to dead-letter with a reason.
 */
export function encodeServedSlate(slate: ServedSlate, depth: number): string {
  const count = Math.min(slate.itemIds.length, depth);
  const width = slate.features.length;
  const servedAt = new Date(slate.servedAt);
  return JSON.stringify({
    schemaVersion: SERVED_SLATE_SCHEMA_VERSION,
    requestId: slate.requestId,
    userId: slate.userId,
    operation: slate.operation,
    // null for a time no Date can hold: the consumer names the field.
    servedAt: Number.isNaN(servedAt.getTime()) ? null : servedAt.toISOString(),
    modelVersion: slate.modelVersion,
    profile: slate.profile,
    experimentId: slate.experiment?.id ?? null,
    arm: slate.experiment?.arm ?? null,
    candidates: slate.candidates,
    features: slate.features,
    itemIds: count === slate.itemIds.length ? slate.itemIds : slate.itemIds.slice(0, count),
    scores: float32Base64(slate.scores, 0, count),
    values: float32Base64(slate.values, 0, count * width),
  });
}

/** A validated slate as the ingest role stores it: items as columns in served order. */
export interface ServedSlateRow {
  readonly requestId: string;
  readonly userId: string;
  readonly operation: ServedOperation;
  readonly servedAt: Date;
  /** The registry's version id (decimal), or null when no model served. */
  readonly modelVersion: string | null;
  readonly profile: string;
  /** The experiment (id) and arm that served it; both null outside one. */
  readonly experimentId: string | null;
  readonly arm: string | null;
  readonly candidates: number;
  readonly features: readonly string[];
  readonly itemIds: readonly string[];
  /** Served order, as float32. */
  readonly scores: readonly number[];
  /** Row-major: item p's values at `(p-1)*features.length ..`, as float32; NaN = none. */
  readonly values: readonly number[];
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const float32Array = z
  .string({ invalid_type_error: 'must be a base64 string of little-endian float32 values' })
  .refine(
    (value) => value.length % 4 === 0 && BASE64.test(value),
    'must be a base64 string of little-endian float32 values',
  );

/**
 * `rank.served` value, version 1. Unknown fields are dropped so the producer can add fields first;
 * `experimentId` and `arm` were added so (absent: outside any experiment). Items are in served
 * order: position p is `itemIds[p - 1]`.
 */
export const servedSlateSchema = z
  .object({
    schemaVersion: schemaVersionSchema(SERVED_SLATE_SCHEMA_VERSION),
    requestId: idSchema,
    userId: idSchema,
    operation: z.enum(SERVED_OPERATIONS, {
      errorMap: () => ({ message: `must be one of ${SERVED_OPERATIONS.join(', ')}` }),
    }),
    servedAt: timestampSchema,
    modelVersion: z
      .string({ invalid_type_error: 'must be a model version id (a string of digits) or null' })
      .regex(/^[0-9]{1,18}$/, 'must be a model version id (a string of digits) or null')
      .nullable(),
    profile: z
      .string()
      .min(1, 'must not be empty')
      .max(MAX_PROFILE_LENGTH, `must be at most ${MAX_PROFILE_LENGTH} characters`),
    experimentId: z
      .string({ invalid_type_error: 'must be an experiment id (a string of digits) or null' })
      .regex(/^[0-9]{1,18}$/, 'must be an experiment id (a string of digits) or null')
      .nullish(),
    arm: z
      .string({ invalid_type_error: 'must be an arm name or null' })
      .min(1, 'must not be empty')
      .max(MAX_PROFILE_LENGTH, `must be at most ${MAX_PROFILE_LENGTH} characters`)
      .nullish(),
    candidates: z.number().int('must be an integer').min(0).max(MAX_CANDIDATES),
    features: z
      .array(
        z
          .string()
          .min(1, 'must not be empty')
          .max(MAX_FEATURE_NAME_LENGTH, `must be at most ${MAX_FEATURE_NAME_LENGTH} characters`),
      )
      .max(MAX_SERVED_FEATURES, `must list at most ${MAX_SERVED_FEATURES} features`),
    itemIds: z
      .array(idSchema)
      .max(
        MAX_SERVED_LOG_DEPTH,
        `must list at most ${MAX_SERVED_LOG_DEPTH} items (SERVED_LOG_DEPTH's bound)`,
      ),
    scores: float32Array,
    values: float32Array,
  })
  .transform((slate, ctx): ServedSlateRow => {
    const issue = (path: (string | number)[], message: string): typeof z.NEVER => {
      ctx.addIssue({ code: 'custom', path, message });
      return z.NEVER;
    };
    const seen = new Map<string, number>();
    for (const [index, name] of slate.features.entries()) {
      const first = seen.get(name);
      if (first !== undefined) return issue(['features', index], `duplicate of features.${first}`);
      seen.set(name, index);
    }
    if ((slate.experimentId == null) !== (slate.arm == null)) {
      return issue(['arm'], 'must be given exactly when experimentId is');
    }
    const items = slate.itemIds.length;
    if (slate.candidates < items) {
      return issue(['candidates'], `must be at least the number of items (${items})`);
    }
    const scores = float32Values(slate.scores);
    if (scores?.length !== items) {
      return issue(
        ['scores'],
        `must hold ${items} float32 values, one per item (got ${lengthOf(slate.scores)})`,
      );
    }
    const expected = items * slate.features.length;
    const values = float32Values(slate.values);
    if (values?.length !== expected) {
      return issue(
        ['values'],
        `must hold ${expected} float32 values, ${slate.features.length} per item (got ${lengthOf(slate.values)})`,
      );
    }
    return {
      requestId: slate.requestId,
      userId: slate.userId,
      operation: slate.operation,
      servedAt: slate.servedAt,
      modelVersion: slate.modelVersion,
      profile: slate.profile,
      experimentId: slate.experimentId ?? null,
      arm: slate.arm ?? null,
      candidates: slate.candidates,
      features: slate.features,
      itemIds: slate.itemIds,
      scores,
      values,
    };
  });

/** How many float32 values a base64 string holds, for messages (a fraction when not whole). */
function lengthOf(base64: string): number {
  return Buffer.from(base64, 'base64').length / 4;
}

/** Kafka bytes to a validated slate, or the first reason (field and why) it is not one. */
export function decodeServedSlate(bytes: Buffer | null): Decoded<ServedSlateRow> {
  return decode(servedSlateSchema, bytes, MAX_SERVED_SLATE_BYTES);
}
