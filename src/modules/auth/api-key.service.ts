import { Inject, Injectable } from '@nestjs/common';
import { DomainError, ValidationError } from '../../common/errors';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { API_KEY_ROLES, ApiKeyRole, generateApiKey, isApiKeyRole } from './api-key';
import { ApiKeyRecord, ApiKeyRepository, ApiKeySelector } from './api-key.repository';

const NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const MAX_RATE_LIMIT = 1_000_000_000;

export interface CreatedApiKey {
  /** The secret key: returned here once and never stored. */
  readonly key: string;
  readonly record: ApiKeyRecord;
}

export interface ApiKeyDraft {
  readonly name: unknown;
  readonly role: unknown;
  /** Requests per second per replica; absent = the role's default. */
  readonly rateLimitPerSecond?: unknown;
}

/** Creating, revoking and listing keys (the `api-key` CLI); verification is ApiKeyAuthService's. */
@Injectable()
export class ApiKeyService {
  constructor(
    private readonly repository: ApiKeyRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async create(draft: ApiKeyDraft): Promise<CreatedApiKey> {
    const name = parseName(draft.name);
    if (!isApiKeyRole(draft.role)) {
      throw new ValidationError('role', `must be one of ${API_KEY_ROLES.join(', ')}`);
    }
    const rateLimitPerSecond = parseRateLimit(draft.rateLimitPerSecond);
    const generated = generateApiKey();
    const record = await this.repository.insert({
      name,
      role: draft.role,
      prefix: generated.prefix,
      hash: generated.hash,
      rateLimitPerSecond,
    });
    if (record === null) {
      throw new DomainError('CONFLICT', `a live API key named "${name}" exists; revoke it first`, {
        field: 'name',
      });
    }
    return { key: generated.key, record };
  }

  /** Revokes by name or id; every replica refuses the key within a notification's delay. */
  async revoke(selector: {
    readonly name?: unknown;
    readonly id?: unknown;
  }): Promise<ApiKeyRecord> {
    const parsed = parseSelector(selector);
    const record = await this.repository.revoke(parsed);
    if (record === null) {
      const which = 'name' in parsed ? `named "${parsed.name}"` : `with id ${parsed.id}`;
      throw new DomainError('NOT_FOUND', `no live API key ${which}`);
    }
    return record;
  }

  list(): Promise<ApiKeyRecord[]> {
    return this.repository.list();
  }

  /** The requests per second a key gets on each replica. */
  effectiveRateLimit(record: Pick<ApiKeyRecord, 'role' | 'rateLimitPerSecond'>): number {
    return record.rateLimitPerSecond ?? this.defaultRateLimit(record.role);
  }

  defaultRateLimit(role: ApiKeyRole): number {
    return this.config.auth.rateLimitPerSecond[role];
  }
}

function parseName(value: unknown): string {
  if (typeof value !== 'string' || !NAME_PATTERN.test(value)) {
    throw new ValidationError('name', '1-64 characters from A-Z a-z 0-9 . _ -');
  }
  return value;
}

function parseRateLimit(value: unknown): number | null {
  if (value === undefined || value === null) return null;
  const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (
    typeof number !== 'number' ||
    !Number.isInteger(number) ||
    number < 1 ||
    number > MAX_RATE_LIMIT
  ) {
    throw new ValidationError(
      'rateLimitPerSecond',
      `must be an integer from 1 to ${MAX_RATE_LIMIT} (requests per second per replica)`,
    );
  }
  return number;
}

function parseSelector(selector: {
  readonly name?: unknown;
  readonly id?: unknown;
}): ApiKeySelector {
  const { name, id } = selector;
  if ((name === undefined) === (id === undefined)) {
    throw new ValidationError('name', 'give exactly one of name and id');
  }
  if (id !== undefined) {
    if (typeof id !== 'string' || !/^[1-9][0-9]{0,17}$/.test(id)) {
      throw new ValidationError('id', 'must be a positive integer');
    }
    return { id };
  }
  return { name: parseName(name) };
}
