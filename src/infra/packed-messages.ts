/**
 * Keyed messages packed back to back in one byte array: per message a little-endian u32 key
 * length, the key (UTF-8), a u32 value length, the value (UTF-8). A log that records on the
 * request path writes each message here at once, outside the JavaScript heap, instead of keeping
 * objects until its flush: what waits for Kafka is never copied or promoted by the collector,
 * and a flush hands its bytes to the producer thread without cloning them.
 */
export interface PackedMessages {
  readonly count: number;
  /** Exactly the packed messages, in a buffer of their own (transferable to a thread). */
  readonly bytes: Uint8Array<ArrayBuffer>;
}

export interface UnpackedMessage {
  readonly key: Buffer;
  readonly value: Buffer;
}

const HEADER = 4;
const INITIAL_BYTES = 64 * 1024;

/** A queue of packed messages: appended one by one, taken from the front in order. */
export class PackedMessageQueue {
  private buffer = Buffer.allocUnsafeSlow(INITIAL_BYTES);
  /** End offset in `buffer` of each message appended since the last compaction. */
  private ends: number[] = [];
  /** Index in `ends` of the oldest queued message, and the offset where it starts. */
  private first = 0;
  private head = 0;
  private used = 0;

  get count(): number {
    return this.ends.length - this.first;
  }

  get bytes(): number {
    return this.used - this.head;
  }

  /** Appends one message; returns the bytes of its value. */
  append(key: string, value: string): number {
    this.reserve(2 * HEADER + 3 * (key.length + value.length));
    const keyBytes = this.buffer.write(key, this.used + HEADER, 'utf8');
    this.buffer.writeUInt32LE(keyBytes, this.used);
    const valueAt = this.used + HEADER + keyBytes;
    const valueBytes = this.buffer.write(value, valueAt + HEADER, 'utf8');
    this.buffer.writeUInt32LE(valueBytes, valueAt);
    this.used = valueAt + HEADER + valueBytes;
    this.ends.push(this.used);
    return valueBytes;
  }

  /**
   * Removes and returns the oldest messages: at most `count`, and no more than `maxBytes` in all
   * unless the first alone is larger (it is taken alone).
   */
  take(count: number, maxBytes: number): PackedMessages {
    let taken = Math.min(count, this.count);
    while (taken > 1 && this.ends[this.first + taken - 1] - this.head > maxBytes) taken--;
    if (taken === 0) return { count: 0, bytes: new Uint8Array(0) };
    const end = this.ends[this.first + taken - 1];
    const bytes = new Uint8Array(end - this.head);
    bytes.set(this.buffer.subarray(this.head, end));
    this.first += taken;
    this.head = end;
    if (this.count === 0) this.clear();
    return { count: taken, bytes };
  }

  clear(): void {
    this.ends = [];
    this.first = 0;
    this.head = 0;
    this.used = 0;
  }

  /**
   * Room for `more` bytes at the end: the queued bytes moved to the front of this buffer when that
   * leaves at least half of it free, else into one twice as big (or more), so that each byte is
   * moved a bounded number of times however full the queue runs.
   */
  private reserve(more: number): void {
    if (this.used + more <= this.buffer.length) return;
    const queued = this.used - this.head;
    let size = this.buffer.length;
    while (size < 2 * (queued + more)) size *= 2;
    const target = size === this.buffer.length ? this.buffer : Buffer.allocUnsafeSlow(size);
    this.buffer.copy(target, 0, this.head, this.used);
    this.buffer = target;
    this.ends = this.ends.slice(this.first).map((at) => at - this.head);
    this.first = 0;
    this.used = queued;
    this.head = 0;
  }
}

/** The messages of `packed`, as views on its bytes (no copy). */
export function unpackMessages(packed: Uint8Array): UnpackedMessage[] {
  const bytes = Buffer.from(packed.buffer, packed.byteOffset, packed.byteLength);
  const messages: UnpackedMessage[] = [];
  for (let at = 0; at < bytes.length;) {
    const keyBytes = bytes.readUInt32LE(at);
    const key = bytes.subarray(at + HEADER, at + HEADER + keyBytes);
    at += HEADER + keyBytes;
    const valueBytes = bytes.readUInt32LE(at);
    const value = bytes.subarray(at + HEADER, at + HEADER + valueBytes);
    at += HEADER + valueBytes;
    messages.push({ key, value });
  }
  return messages;
}
