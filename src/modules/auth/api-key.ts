import { createHash, randomBytes } from 'node:crypto';

/** Roles a key can have; `ops` can do everything `read` can. */
export const API_KEY_ROLES = ['read', 'ops'] as const;
export type ApiKeyRole = (typeof API_KEY_ROLES)[number];

export function isApiKeyRole(value: unknown): value is ApiKeyRole {
  return (API_KEY_ROLES as readonly unknown[]).includes(value);
}

export function roleSatisfies(held: ApiKeyRole, required: ApiKeyRole): boolean {
  return held === 'ops' || required === 'read';
}

const PREFIX_BYTES = 4;
const SECRET_BYTES = 32;
/** `rk_<8 hex: public prefix>_<43 base64url: 32 random bytes>`. */
const KEY_PATTERN = /^rk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$/;
export const KEY_FORMAT = 'rk_<8 hex>_<43 base64url>';

export interface GeneratedKey {
  /** The whole key; shown once, never stored. */
  readonly key: string;
  /** The public part (`rk_1a2b3c4d`), stored to tell keys apart. */
  readonly prefix: string;
  readonly hash: Buffer;
}

export function generateApiKey(): GeneratedKey {
  const prefix = `rk_${randomBytes(PREFIX_BYTES).toString('hex')}`;
  const key = `${prefix}_${randomBytes(SECRET_BYTES).toString('base64url')}`;
  return { key, prefix, hash: hashApiKey(key) };
}

export function isWellFormedApiKey(key: string): boolean {
  return KEY_PATTERN.test(key);
}

/**
 * SHA-256 of the whole key. A fast hash is right here: the key carries 256 random bits, so there
 * is nothing to guess, and hashing costs about a microsecond on every request.
 */
export function hashApiKey(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

type Headers = Readonly<Record<string, string | string[] | undefined>>;

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** The key a request presents: `x-api-key: <key>` or `authorization: Bearer <key>`. */
export function presentedApiKey(headers: Headers): string | undefined {
  const direct = headers['x-api-key'];
  if (typeof direct === 'string' && direct.length > 0) return direct.trim();
  const authorization = headers.authorization;
  if (typeof authorization !== 'string') return undefined;
  return BEARER.exec(authorization)?.[1];
}
