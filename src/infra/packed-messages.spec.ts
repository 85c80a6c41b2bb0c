import { PackedMessageQueue, unpackMessages } from './packed-messages';

function texts(bytes: Uint8Array): [string, string][] {
  return unpackMessages(bytes).map(({ key, value }) => [key.toString(), value.toString()]);
}

describe('PackedMessageQueue', () => {
  it('takes messages in order, at most the count asked for, and keeps the rest', () => {
    const queue = new PackedMessageQueue();
    for (let i = 0; i < 5; i++) queue.append(`user-${i}`, `{"n":${i}}`);
    expect(queue.count).toBe(5);
    const first = queue.take(3, 1_000_000);
    expect(first.count).toBe(3);
    expect(texts(first.bytes)).toEqual([
      ['user-0', '{"n":0}'],
      ['user-1', '{"n":1}'],
      ['user-2', '{"n":2}'],
    ]);
    queue.append('user-5', '{"n":5}');
    expect(texts(queue.take(10, 1_000_000).bytes).map(([key]) => key)).toEqual([
      'user-3',
      'user-4',
      'user-5',
    ]);
    expect(queue.count).toBe(0);
    expect(queue.bytes).toBe(0);
  });

  it('keeps a take under its byte bound, but takes a larger first message alone', () => {
    const queue = new PackedMessageQueue();
    queue.append('a', 'x'.repeat(100));
    queue.append('b', 'y'.repeat(100));
    queue.append('c', 'z'.repeat(10));
    expect(queue.take(10, 150).count).toBe(1);
    expect(queue.take(10, 150).count).toBe(2);
    queue.append('d', 'w'.repeat(500));
    expect(texts(queue.take(10, 150).bytes)).toEqual([['d', 'w'.repeat(500)]]);
  });

  it('counts and round-trips UTF-8, and grows past its first buffer', () => {
    const queue = new PackedMessageQueue();
    expect(queue.append('ü', 'é€')).toBe(5);
    const large = 'v'.repeat(200_000);
    for (let i = 0; i < 3; i++) queue.append(`k${i}`, large);
    const taken = queue.take(10, 10_000_000);
    expect(texts(taken.bytes)).toEqual([
      ['ü', 'é€'],
      ['k0', large],
      ['k1', large],
      ['k2', large],
    ]);
    expect(taken.bytes.byteLength).toBe(taken.bytes.buffer.byteLength);
  });

  it('reuses the room of taken messages and keeps the order across it', () => {
    const queue = new PackedMessageQueue();
    const out: string[] = [];
    for (let i = 0; i < 200; i++) {
      queue.append(`k${i}`, `${i}:`.padEnd(2000, 'x'));
      if (i % 7 === 6) out.push(...texts(queue.take(5, 1_000_000).bytes).map(([key]) => key));
    }
    out.push(...texts(queue.take(1000, 10_000_000).bytes).map(([key]) => key));
    expect(out).toEqual(Array.from({ length: 200 }, (_, i) => `k${i}`));
    expect(queue.count).toBe(0);
  });

  it('moves each byte a bounded number of times while the queue runs nearly full', () => {
    const queue = new PackedMessageQueue();
    const value = 'x'.repeat(1000);
    // Most of the first buffer's 64 KiB queued, then one message in and one out, over and over.
    for (let i = 0; i < 58; i++) queue.append(`k${i}`, value);
    const copy = jest.spyOn(Buffer.prototype, 'copy');
    let appended = 0;
    for (let i = 58; i < 2058; i++) {
      appended += queue.append(`k${i}`, value);
      queue.take(1, 1_000_000);
    }
    const moved = copy.mock.calls.reduce(
      (sum, [, , start, end]) => sum + Math.max(0, Number(end) - Number(start)),
      0,
    );
    copy.mockRestore();
    expect(moved).toBeLessThan(4 * appended);
    expect(texts(queue.take(100, 1_000_000).bytes)[0][0]).toBe('k2000');
  });

  it('forgets everything on clear', () => {
    const queue = new PackedMessageQueue();
    queue.append('a', 'b');
    queue.clear();
    expect(queue.take(10, 100)).toEqual({ count: 0, bytes: new Uint8Array(0) });
  });
});
