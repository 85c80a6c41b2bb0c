import { ApiKeyRole, generateApiKey } from '../../../src/modules/auth/api-key';
import type { ApiKeyRecord } from '../../../src/modules/auth/api-key.repository';

/** An in-memory api_keys table that counts lookups and can be made unreachable. */
export class FakeKeys {
  readonly rows = new Map<string, ApiKeyRecord>();
  lookups = 0;
  down = false;
  marked: string[] = [];

  add(role: ApiKeyRole, rateLimitPerSecond: number | null = null): { key: string; hash: string } {
    const generated = generateApiKey();
    const hash = generated.hash.toString('hex');
    const id = String(this.rows.size + 1);
    this.rows.set(hash, {
      id,
      name: `key-${id}`,
      role,
      prefix: generated.prefix,
      rateLimitPerSecond,
      createdAt: new Date(),
      revokedAt: null,
      lastUsedAt: null,
    });
    return { key: generated.key, hash };
  }

  allLive(): Promise<{ hash: string; record: ApiKeyRecord }[]> {
    if (this.down) return Promise.reject(new Error('connect ECONNREFUSED'));
    return Promise.resolve([...this.rows].map(([hash, record]) => ({ hash, record })));
  }

  findLive(hash: Buffer): Promise<ApiKeyRecord | null> {
    this.lookups++;
    if (this.down) return Promise.reject(new Error('connect ECONNREFUSED'));
    return Promise.resolve(this.rows.get(hash.toString('hex')) ?? null);
  }

  markUsed(ids: readonly string[]): Promise<void> {
    this.marked.push(...ids);
    return Promise.resolve();
  }
}
