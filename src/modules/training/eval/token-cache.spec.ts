import { appendFileSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { HashingTextEncoder } from '../../../../test/support/fakes/hashing-encoder';
import { DiskTokenCache } from './token-cache';

describe('DiskTokenCache', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), 'token-cache-'));
  });
  afterEach(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it('stores binary16 states by text hash, reads them back after a restart, cuts off a torn record', async () => {
    const encoder = new HashingTextEncoder(8);
    const texts = ['red fast car', 'blue slow boat on the sea', 'red fast car'];
    const cache = new DiskTokenCache(root, encoder, 4);
    await cache.fill(texts);
    expect(cache.size).toBe(2);
    // 2 bytes of count + 2 bytes per value; the second text is truncated to 4 tokens.
    expect(cache.bytesOf(texts)).toEqual({ texts: 2, bytes: 2 + 3 * 8 * 2 + (2 + 4 * 8 * 2) });
    const [exact] = await encoder.encodeTokens(['blue slow boat on the sea'], 4);
    const stored = cache.get('blue slow boat on the sea');
    expect(stored?.count).toBe(4);
    stored?.data.forEach((x, i) => {
      expect(Math.abs(x - exact.data[i])).toBeLessThanOrEqual(Math.abs(exact.data[i]) * 2 ** -11);
    });

    const dir = path.join(root, readdirSync(root)[0]);
    const file = path.join(dir, 'tokens-4.bin');
    const size = statSync(file).size;
    // A record killed mid-append: a hash and a count promising more than is there.
    appendFileSync(
      file,
      Buffer.concat([Buffer.alloc(32, 7), Buffer.from([9, 0]), Buffer.alloc(10)]),
    );
    const reopened = new DiskTokenCache(root, encoder, 4);
    expect(reopened.size).toBe(2);
    expect(Array.from(reopened.get('red fast car')?.data ?? [])).toEqual(
      Array.from(cache.get('red fast car')?.data ?? []),
    );
    expect(reopened.get('never encoded')).toBeUndefined();
    // The torn bytes are cut off, so what is appended next reads back after another restart.
    expect(statSync(file).size).toBe(size);
    await reopened.fill(['green tree']);
    expect(new DiskTokenCache(root, encoder, 4).get('green tree')?.count).toBe(2);
  });
});
