import type { CliCommand, CliContext } from '../../cli-command';
import { parseFlags } from '../../cli-command';
import { createPgPool } from '../../infra/postgres';
import { API_KEY_ROLES } from './api-key';
import { ApiKeyRecord, ApiKeyRepository } from './api-key.repository';
import { ApiKeyService } from './api-key.service';

const USAGE = [
  `api-key create --name NAME --role ${API_KEY_ROLES.join('|')} [--rate-limit N]`,
  'api-key revoke --name NAME | --id ID',
  'api-key list',
].join('\n       ');

/** Only a PostgreSQL pool: no role modules start for key administration. */
async function withApiKeys<T>(
  context: CliContext,
  work: (service: ApiKeyService) => Promise<T>,
): Promise<T> {
  const pool = createPgPool(context.config.postgres, context.logger);
  try {
    return await work(new ApiKeyService(new ApiKeyRepository(pool), context.config));
  } finally {
    await pool.end();
  }
}

/** A flag's value; a flag given without one is an error that names it. */
function flagValue(flags: Map<string, string | true>, name: string): string | undefined {
  const value = flags.get(name);
  if (value === true) throw new Error(`--${name} needs a value\nusage: ${USAGE}`);
  return value;
}

function rejectUnknownFlags(flags: Map<string, string | true>, allowed: readonly string[]): void {
  for (const flag of flags.keys()) {
    if (!allowed.includes(flag)) {
      throw new Error(
        `unknown flag --${flag} (allowed: ${allowed.map((a) => `--${a}`).join(', ')})`,
      );
    }
  }
}

function summarize(record: ApiKeyRecord, service: ApiKeyService): Record<string, unknown> {
  return {
    id: record.id,
    name: record.name,
    role: record.role,
    prefix: record.prefix,
    rateLimitPerSecond: service.effectiveRateLimit(record),
    rateLimitSource: record.rateLimitPerSecond === null ? 'role default' : 'key',
    createdAt: record.createdAt.toISOString(),
    revokedAt: record.revokedAt?.toISOString() ?? null,
    lastUsedAt: record.lastUsedAt?.toISOString() ?? null,
  };
}

const FLAG_FIELDS: Readonly<Record<string, string>> = {
  name: '--name',
  role: '--role',
  rateLimitPerSecond: '--rate-limit',
  id: '--id',
};

/** Service errors name the field; the CLI user typed a flag. */
function inFlagTerms(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const field = /^(\w+): /.exec(error.message)?.[1];
  const flag = field === undefined ? undefined : FLAG_FIELDS[field];
  return flag === undefined ? error : new Error(`${flag}${error.message.slice(field?.length)}`);
}

const apiKey: CliCommand = {
  name: 'api-key',
  usage: 'api-key create|revoke|list',
  summary: 'API keys of the GraphQL API: create (prints the key once), revoke, list',
  async run(args, context) {
    const { _: positional, flags } = parseFlags(args);
    const action = positional.at(0);
    try {
      switch (action) {
        case 'create': {
          rejectUnknownFlags(flags, ['name', 'role', 'rate-limit']);
          const draft = {
            name: flagValue(flags, 'name'),
            role: flagValue(flags, 'role'),
            rateLimitPerSecond: flagValue(flags, 'rate-limit'),
          };
          const { key, record, rate } = await withApiKeys(context, async (service) => {
            const created = await service.create(draft);
            return { ...created, rate: service.effectiveRateLimit(created.record) };
          });
          process.stderr.write(
            `created API key "${record.name}" (id ${record.id}, role ${record.role}, ${rate} requests/s ` +
              'per replica). It is shown only now: store it; send it as x-api-key or authorization: Bearer.\n',
          );
          // The key alone on stdout: `KEY=$(npm run -s cli -- api-key create ...)`.
          process.stdout.write(`${key}\n`);
          return;
        }
        case 'revoke': {
          rejectUnknownFlags(flags, ['name', 'id']);
          const selector = { name: flagValue(flags, 'name'), id: flagValue(flags, 'id') };
          if ((selector.name === undefined) === (selector.id === undefined)) {
            throw new Error(`give exactly one of --name and --id\nusage: ${USAGE}`);
          }
          const revoked = await withApiKeys(context, (service) => service.revoke(selector));
          process.stdout.write(
            `revoked API key "${revoked.name}" (id ${revoked.id}, ${revoked.prefix}); every replica refuses it now\n`,
          );
          return;
        }
        case 'list': {
          rejectUnknownFlags(flags, []);
          const keys = await withApiKeys(context, async (service) =>
            (await service.list()).map((record) => summarize(record, service)),
          );
          process.stdout.write(`${JSON.stringify(keys, null, 2)}\n`);
          return;
        }
        case undefined:
        default:
          throw new Error(
            `${action === undefined ? 'missing action' : `unknown action "${action}"`}\nusage: ${USAGE}`,
          );
      }
    } catch (error) {
      throw inFlagTerms(error);
    }
  },
};

export const AUTH_COMMANDS: readonly CliCommand[] = [apiKey];
