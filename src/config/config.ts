import { z } from 'zod';

export const ROLES = ['api', 'ingest', 'train', 'all'] as const;
export type Role = (typeof ROLES)[number];

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number().int().min(min).max(max);

const url = (protocols: string[]) =>
  z
    .string()
    .url()
    .refine((value) => protocols.some((p) => value.startsWith(`${p}://`)), {
      message: `must start with ${protocols.map((p) => `${p}://`).join(' or ')}`,
    });

const csv = z
  .string()
  .transform((value) =>
    value
      .split(',')
      .map((part) => part.trim())
      .filter((part) => part.length > 0),
  )
  .refine((parts) => parts.length > 0, { message: 'must list at least one entry' });

/**
 * Every environment variable the service reads, with its default. The README's configuration
 * table mirrors this object; `describeConfig()` prints it.
 */
export const configSchema = z.object({
  ROLE: z.enum(ROLES).default('all'),
  HOST: z.string().min(1).default('0.0.0.0'),
  PORT: int(0, 65535).default(3000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  DATABASE_URL: url(['postgres', 'postgresql']).default(
    'postgres://postgres@127.0.0.1:5432/recsys',
  ),
  PG_POOL_MAX: int(1, 1000).default(10),
  PG_STATEMENT_TIMEOUT_MS: int(0).default(10_000),
  REDIS_URL: url(['redis', 'rediss']).default('redis://127.0.0.1:6379'),
  REDIS_KEY_PREFIX: z.string().default('recsys:'),
  KAFKA_BROKERS: csv.default('127.0.0.1:9092'),
  KAFKA_CLIENT_ID: z.string().min(1).default('recsys'),
  KAFKA_TOPIC_PREFIX: z.string().default(''),
  HEALTH_TIMEOUT_MS: int(100, 60_000).default(2000),
  SHUTDOWN_TIMEOUT_MS: int(100, 120_000).default(10_000),
});

export type RawConfig = z.infer<typeof configSchema>;

export interface AppConfig {
  readonly role: Role;
  readonly http: { readonly host: string; readonly port: number };
  readonly logLevel: RawConfig['LOG_LEVEL'];
  readonly postgres: {
    readonly url: string;
    readonly poolMax: number;
    readonly statementTimeoutMs: number;
  };
  readonly redis: { readonly url: string; readonly keyPrefix: string };
  readonly kafka: {
    readonly brokers: readonly string[];
    readonly clientId: string;
    readonly topicPrefix: string;
  };
  readonly healthTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
}

export class ConfigError extends Error {
  constructor(readonly issues: readonly string[]) {
    super(`Invalid configuration:\n  ${issues.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** Parses the environment once; a missing or malformed variable fails with its name. */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): AppConfig {
  const present = Object.fromEntries(
    Object.keys(configSchema.shape).flatMap((key) => {
      const value = env[key];
      return value === undefined || value === '' ? [] : [[key, value]];
    }),
  );
  const parsed = configSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const name = issue.path.join('.');
        return `${name}=${JSON.stringify(env[name] ?? '')}: ${issue.message}`;
      }),
    );
  }
  const c = parsed.data;
  return {
    role: c.ROLE,
    http: { host: c.HOST, port: c.PORT },
    logLevel: c.LOG_LEVEL,
    postgres: {
      url: c.DATABASE_URL,
      poolMax: c.PG_POOL_MAX,
      statementTimeoutMs: c.PG_STATEMENT_TIMEOUT_MS,
    },
    redis: { url: c.REDIS_URL, keyPrefix: c.REDIS_KEY_PREFIX },
    kafka: {
      brokers: c.KAFKA_BROKERS,
      clientId: c.KAFKA_CLIENT_ID,
      topicPrefix: c.KAFKA_TOPIC_PREFIX,
    },
    healthTimeoutMs: c.HEALTH_TIMEOUT_MS,
    shutdownTimeoutMs: c.SHUTDOWN_TIMEOUT_MS,
  };
}
