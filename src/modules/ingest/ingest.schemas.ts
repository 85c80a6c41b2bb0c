import { isUtf8 } from 'node:buffer';
import { z } from 'zod';
import { EVENT_TYPES, EventType } from '../../common/event-types';
import { hasControlCharacter, MAX_ID_LENGTH } from '../../common/ids';

/** The newest schema version each topic understands; older versions are accepted as they are. */
export const USER_EVENT_SCHEMA_VERSION = 1;
export const CATALOG_ITEM_SCHEMA_VERSION = 1;

const MIN_TS = Date.UTC(2000, 0, 1);
const MAX_TS = Date.UTC(2100, 0, 1);
const ISO_8601 =
  /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

/** ISO-8601 string or epoch milliseconds, normalised to a Date. */
export const timestampSchema = z
  .union([z.string(), z.number()], {
    errorMap: () => ({ message: 'must be an ISO-8601 string or epoch milliseconds' }),
  })
  .transform((value, ctx) => {
    const ms =
      typeof value === 'number' ? value : ISO_8601.test(value) ? Date.parse(value) : Number.NaN;
    if (typeof value === 'number' && !Number.isInteger(value)) {
      ctx.addIssue({ code: 'custom', message: 'epoch milliseconds must be an integer' });
      return z.NEVER;
    }
    if (!Number.isFinite(ms)) {
      ctx.addIssue({ code: 'custom', message: 'must be an ISO-8601 string or epoch milliseconds' });
      return z.NEVER;
    }
    if (ms < MIN_TS || ms > MAX_TS) {
      ctx.addIssue({ code: 'custom', message: 'must lie between 2000-01-01 and 2100-01-01' });
      return z.NEVER;
    }
    return new Date(ms);
  });

/** An id (user, item, event, request): the rule of common/ids, with zod's messages. */
export const idSchema = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(MAX_ID_LENGTH, `must be at most ${MAX_ID_LENGTH} characters`)
  .refine((value) => !hasControlCharacter(value), 'must not contain control characters');

/** A message's `schemaVersion`: 1 up to `current` (newer is refused), default 1. */
export const schemaVersionSchema = (current: number) =>
  z
    .number()
    .int()
    .min(1)
    .max(current, `unsupported version (this consumer reads up to ${current})`)
    .default(1);

/** `user.events` value, version 1. Unknown fields are dropped so producers can add fields first. */
export const userEventSchema = z.object({
  schemaVersion: schemaVersionSchema(USER_EVENT_SCHEMA_VERSION),
  eventId: idSchema,
  type: z.enum(EVENT_TYPES, {
    errorMap: () => ({ message: `must be one of ${EVENT_TYPES.join(', ')}` }),
  }),
  userId: idSchema,
  itemId: idSchema,
  timestamp: timestampSchema,
  requestId: idSchema.optional(),
  position: z.number().int().min(0).max(100_000).optional(),
  context: z.record(z.unknown()).optional(),
});
export type UserEvent = z.output<typeof userEventSchema>;

/**
 * `catalog.items` value, version 1. `updatedAt` is the producer's time of this version of the item;
 * the newest one wins (the Kafka message timestamp when absent). A deletion needs no title.
 */
export const catalogItemSchema = z
  .object({
    schemaVersion: schemaVersionSchema(CATALOG_ITEM_SCHEMA_VERSION),
    itemId: idSchema,
    title: z.string().trim().min(1, 'must not be empty').max(1000).optional(),
    description: z.string().max(20_000).optional(),
    category: z.string().trim().min(1).max(200).optional(),
    tags: z.array(z.string().trim().min(1).max(100)).max(100).optional(),
    price: z.number().finite().min(0).optional(),
    createdAt: timestampSchema.optional(),
    updatedAt: timestampSchema.optional(),
    deleted: z.boolean().optional(),
  })
  .superRefine((item, ctx) => {
    if (item.title === undefined && item.deleted !== true) {
      ctx.addIssue({ code: 'custom', path: ['title'], message: 'required' });
    }
  });
export type CatalogItem = z.output<typeof catalogItemSchema>;

/** Why one message was rejected: the field (a dotted path, or `value`) and the reason. */
export interface Rejection {
  readonly field: string;
  readonly reason: string;
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; rejection: Rejection };

function firstIssue(error: z.ZodError): Rejection {
  const issue = error.issues.at(0);
  if (issue === undefined) return { field: 'value', reason: 'invalid' };
  const field = issue.path.length > 0 ? issue.path.join('.') : 'value';
  const reason =
    issue.code === 'invalid_type' && issue.received === 'undefined' ? 'required' : issue.message;
  return { field, reason };
}

const isId = (value: unknown): value is string =>
  typeof value === 'string' &&
  value.length > 0 &&
  value.length <= MAX_ID_LENGTH &&
  value.trim() === value &&
  !hasControlCharacter(value);

function fastTimestamp(value: unknown): Date | undefined {
  let ms: number;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) return undefined;
    ms = value;
  } else if (typeof value === 'string' && ISO_8601.test(value)) {
    ms = Date.parse(value);
  } else return undefined;
  return Number.isFinite(ms) && ms >= MIN_TS && ms <= MAX_TS ? new Date(ms) : undefined;
}

/**
 * The common case of `userEventSchema` without zod (about 3x cheaper per message, and ingest is
 * CPU-bound): returns exactly what the schema would, or undefined so that the schema decides (and
 * explains). `fast-path.spec` checks both agree.
 */
export function fastUserEvent(input: Readonly<Record<string, unknown>>): UserEvent | undefined {
  const { schemaVersion, eventId, type, userId, itemId, requestId, position, context } = input;
  if (!isId(eventId) || !isId(userId) || !isId(itemId)) return undefined;
  if (schemaVersion !== undefined && schemaVersion !== 1) return undefined;
  if (!(EVENT_TYPES as readonly unknown[]).includes(type)) return undefined;
  if (requestId !== undefined && !isId(requestId)) return undefined;
  if (
    position !== undefined &&
    !(
      typeof position === 'number' &&
      Number.isInteger(position) &&
      position >= 0 &&
      position <= 100_000
    )
  ) {
    return undefined;
  }
  if (
    context !== undefined &&
    (typeof context !== 'object' || context === null || Array.isArray(context))
  ) {
    return undefined;
  }
  const timestamp = fastTimestamp(input.timestamp);
  if (timestamp === undefined) return undefined;
  const event: UserEvent = {
    schemaVersion: 1,
    eventId,
    type: type as EventType,
    userId,
    itemId,
    timestamp,
  };
  if (requestId !== undefined) event.requestId = requestId;
  if (position !== undefined) event.position = position;
  if (context !== undefined) event.context = context as Record<string, unknown>;
  return event;
}

/** Deepest nesting of a stored JSON value (`context`); deeper overflows JSON.stringify and jsonb. */
export const MAX_JSON_DEPTH = 32;

/**
 * What PostgreSQL could not store: U+0000 in any string or key (text and jsonb reject it) and
 * nesting deeper than MAX_JSON_DEPTH. Either would fail the whole chunk's transaction on every
 * retry and stall the partition, so such a message is rejected here instead. Iterative, since the
 * input may be nested arbitrarily deep.
 */
export function unstorable(input: object): Rejection | undefined {
  const stack: { value: unknown; path: string; depth: number }[] = [
    { value: input, path: '', depth: 0 },
  ];
  for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
    const { value, path, depth } = node;
    const field = path === '' ? 'value' : path;
    if (typeof value === 'string') {
      if (value.includes('\0')) return { field, reason: 'must not contain U+0000' };
    } else if (typeof value === 'object' && value !== null) {
      if (depth > MAX_JSON_DEPTH) {
        return { field, reason: `nested deeper than ${MAX_JSON_DEPTH} levels` };
      }
      for (const [key, child] of Object.entries(value)) {
        const childPath = path === '' ? key : `${path}.${key}`;
        if (key.includes('\0')) return { field: childPath, reason: 'key must not contain U+0000' };
        stack.push({ value: child, path: childPath, depth: depth + 1 });
      }
    }
  }
  return undefined;
}

/** Validates an already parsed JSON value against a schema. */
export function validate<T>(
  schema: z.ZodType<T, z.ZodTypeDef, unknown>,
  input: unknown,
): Decoded<T> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, rejection: { field: 'value', reason: 'must be a JSON object' } };
  }
  const rejection = unstorable(input);
  if (rejection !== undefined) return { ok: false, rejection };
  const parsed = schema.safeParse(input);
  return parsed.success
    ? { ok: true, value: parsed.data }
    : { ok: false, rejection: firstIssue(parsed.error) };
}

/** Bytes from Kafka to a validated value, or the first reason it is not one. */
export function decode<T>(
  schema: z.ZodType<T, z.ZodTypeDef, unknown>,
  bytes: Buffer | null,
  maxBytes: number,
): Decoded<T> {
  if (bytes === null || bytes.length === 0) {
    return { ok: false, rejection: { field: 'value', reason: 'empty message' } };
  }
  if (bytes.length > maxBytes) {
    return {
      ok: false,
      rejection: {
        field: 'value',
        reason: `${bytes.length} bytes exceeds the limit of ${maxBytes}`,
      },
    };
  }
  if (!isUtf8(bytes)) {
    return { ok: false, rejection: { field: 'value', reason: 'invalid UTF-8' } };
  }
  const text = bytes.toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return {
      ok: false,
      rejection: {
        field: 'value',
        reason: `invalid JSON: ${error instanceof Error ? error.message : String(error)}`,
      },
    };
  }
  if (
    (schema as unknown) === userEventSchema &&
    typeof json === 'object' &&
    json !== null &&
    // U+0000 can only arrive escaped; only `context` nests. Else the walk is skipped (hot path).
    !text.includes('\\u0000') &&
    !('context' in json && unstorable(json) !== undefined)
  ) {
    const fast = fastUserEvent(json as Record<string, unknown>);
    if (fast !== undefined) return { ok: true, value: fast as T };
  }
  return validate(schema, json);
}

/**
 * The first of `times` (field → time) lying more than `maxSkewMs` ahead of `referenceMs` (when the
 * broker received the message): a producer clock that far ahead would skew every decayed count it
 * touches, and a future `updatedAt` would freeze its item against later writes.
 */
export function aheadOfTime(
  times: Readonly<Record<string, Date | undefined>>,
  referenceMs: number,
  maxSkewMs: number,
): Rejection | undefined {
  for (const [field, time] of Object.entries(times)) {
    if (time === undefined) continue;
    const ahead = time.getTime() - referenceMs;
    if (ahead > maxSkewMs) {
      return {
        field,
        reason: `${ahead} ms ahead of the broker time (INGEST_MAX_CLOCK_SKEW_MS allows ${maxSkewMs})`,
      };
    }
  }
  return undefined;
}
