import { createHash } from 'node:crypto';
import { OperationTypeNode } from 'graphql';
import {
  generateApiKey,
  hashApiKey,
  isApiKeyRole,
  isWellFormedApiKey,
  presentedApiKey,
  roleSatisfies,
} from './api-key';
import { requiredAccess } from './api-key.guard';

describe('API key format and hashing', () => {
  it('generates rk_<8 hex>_<43 base64url> keys whose stored hash is the SHA-256 of the key', () => {
    const generated = generateApiKey();
    expect(generated.key).toMatch(/^rk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$/);
    expect(generated.key.startsWith(`${generated.prefix}_`)).toBe(true);
    expect(generated.prefix).toMatch(/^rk_[0-9a-f]{8}$/);
    expect(generated.hash).toEqual(createHash('sha256').update(generated.key).digest());
    expect(hashApiKey(generated.key)).toHaveLength(32);
    expect(isWellFormedApiKey(generated.key)).toBe(true);
  });

  it('never generates the same key twice', () => {
    const keys = new Set(Array.from({ length: 1000 }, () => generateApiKey().key));
    expect(keys.size).toBe(1000);
  });

  it.each([
    ['empty', ''],
    ['no rk_ prefix', `xx_0123abcd_${'A'.repeat(43)}`],
    ['short secret', `rk_0123abcd_${'A'.repeat(42)}`],
    ['long secret', `rk_0123abcd_${'A'.repeat(44)}`],
    ['upper-case hex prefix', `rk_0123ABCD_${'A'.repeat(43)}`],
    ['padding', `rk_0123abcd_${'A'.repeat(42)}=`],
  ])('rejects a malformed key (%s)', (_label, key) => {
    expect(isWellFormedApiKey(key)).toBe(false);
  });

  it('reads x-api-key first, then authorization: Bearer', () => {
    expect(presentedApiKey({ 'x-api-key': 'k1', authorization: 'Bearer k2' })).toBe('k1');
    expect(presentedApiKey({ authorization: 'Bearer k2' })).toBe('k2');
    expect(presentedApiKey({ authorization: 'bearer   k3 ' })).toBe('k3');
    expect(presentedApiKey({ authorization: 'Basic dXNlcjpwdw==' })).toBeUndefined();
    expect(presentedApiKey({ 'x-api-key': '' })).toBeUndefined();
    expect(presentedApiKey({})).toBeUndefined();
  });
});

describe('roles', () => {
  it('lets ops do everything read can, and read only read', () => {
    expect(roleSatisfies('ops', 'ops')).toBe(true);
    expect(roleSatisfies('ops', 'read')).toBe(true);
    expect(roleSatisfies('read', 'read')).toBe(true);
    expect(roleSatisfies('read', 'ops')).toBe(false);
    expect(isApiKeyRole('read')).toBe(true);
    expect(isApiKeyRole('admin')).toBe(false);
  });

  it('requires ops for every mutation whatever its decorator, read for undecorated queries', () => {
    expect(requiredAccess(undefined, OperationTypeNode.MUTATION)).toBe('ops');
    expect(requiredAccess('read', OperationTypeNode.MUTATION)).toBe('ops');
    expect(requiredAccess('anonymous', OperationTypeNode.MUTATION)).toBe('ops');
    expect(requiredAccess(undefined, OperationTypeNode.QUERY)).toBe('read');
    expect(requiredAccess('ops', OperationTypeNode.QUERY)).toBe('ops');
    expect(requiredAccess('anonymous', OperationTypeNode.QUERY)).toBe('anonymous');
  });
});
