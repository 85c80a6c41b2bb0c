import { crc16, KEY_SLOTS, keySlot } from './key-slot';

describe('Redis Cluster key slots', () => {
  it('computes the CRC16 the cluster specification gives', () => {
    // The specification's reference value: CRC16 of "123456789" is 0x31C3.
    expect(crc16(Buffer.from('123456789'))).toBe(0x31c3);
  });

  it('hashes only the first non-empty hash tag', () => {
    expect(keySlot('{user1000}.following')).toBe(keySlot('{user1000}.followers'));
    // An empty first tag: the whole key is hashed (8363 from CLUSTER KEYSLOT).
    expect(keySlot('foo{}{bar}')).toBe(8363);
    expect(keySlot('foo{{bar}}zap')).toBe(keySlot('{bar'));
    expect(keySlot('foo{bar}{zap}')).toBe(keySlot('bar'));
    expect(keySlot('prefix:{items}item-pop:i-1')).toBe(keySlot('{items}pop-rank'));
  });

  it('gives slots the cluster gives (values from CLUSTER KEYSLOT on Redis 7.0)', () => {
    expect(keySlot('foo')).toBe(12182);
    expect(keySlot('bar')).toBe(5061);
    expect(keySlot('somekey')).toBe(11058);
    expect(keySlot('{user1000}.following')).toBe(3443);
    for (const key of ['a', 'ß', 'user:123', '']) {
      expect(keySlot(key)).toBeGreaterThanOrEqual(0);
      expect(keySlot(key)).toBeLessThan(KEY_SLOTS);
    }
  });
});
