import { appendFileSync, existsSync, mkdirSync, readFileSync, truncateSync } from 'node:fs';
import path from 'node:path';
import type { TokenStates } from '../../../common/token-states';
import { itemTextHash } from '../../embedding/item-text';
import type { TokenEncoder } from '../../embedding/text-encoder';
import {
  decodeHalf,
  tokenHalvesFromBytes,
  tokenStatesByteLength,
  tokenStatesToBytes,
} from '../../embedding/token-codec';

const CHUNK = 64;

/**
 * The encoder's final token states on disk by text hash, in binary16 (token-codec.ts):
 * `<root>/<encoder id>/tokens-<maxTokens>.bin`, records of 32 raw sha256 bytes + the stored
 * states. Held in memory as binary16 too, decoded per lookup. Appended chunk by chunk, so an
 * interrupted run keeps what it encoded.
 */
export class DiskTokenCache {
  private readonly file: string;
  private readonly states = new Map<string, { count: number; halves: Uint16Array }>();

  constructor(
    root: string,
    private readonly encoder: TokenEncoder,
    readonly maxTokens: number,
  ) {
    const dir = path.join(root, encoder.modelId.replace(/[^A-Za-z0-9._-]+/g, '_'));
    mkdirSync(dir, { recursive: true });
    this.file = path.join(dir, `tokens-${maxTokens}.bin`);
    if (existsSync(this.file)) this.read();
  }

  /** Stored bytes of the states of `texts` (hashes excluded; each distinct text once). */
  bytesOf(texts: readonly string[]): { texts: number; bytes: number } {
    const hashes = new Set(texts.map((text) => itemTextHash(text)));
    let bytes = 0;
    let found = 0;
    for (const hash of hashes) {
      const stored = this.states.get(hash);
      if (stored === undefined) continue;
      found++;
      bytes += tokenStatesByteLength(stored.count, this.encoder.dimension);
    }
    return { texts: found, bytes };
  }

  get size(): number {
    return this.states.size;
  }

  /** Encodes the texts not cached yet. */
  async fill(
    texts: readonly string[],
    onProgress?: (done: number, total: number) => void,
  ): Promise<void> {
    const missing = new Map<string, string>();
    for (const text of texts) {
      const hash = itemTextHash(text);
      if (!this.states.has(hash)) missing.set(hash, text);
    }
    const todo = [...missing];
    const d = this.encoder.dimension;
    for (let start = 0; start < todo.length; start += CHUNK) {
      const chunk = todo.slice(start, start + CHUNK);
      const encoded = await this.encoder.encodeTokens(
        chunk.map(([, text]) => text),
        this.maxTokens,
      );
      const records = chunk.map(([hash], i) => {
        const bytes = tokenStatesToBytes(encoded[i], d);
        this.states.set(hash, tokenHalvesFromBytes(bytes, d));
        return Buffer.concat([Buffer.from(hash, 'hex'), bytes]);
      });
      appendFileSync(this.file, Buffer.concat(records));
      onProgress?.(Math.min(start + CHUNK, todo.length), todo.length);
    }
  }

  /** The cached states of `text`, decoded to float32. */
  get(text: string): TokenStates | undefined {
    const stored = this.states.get(itemTextHash(text));
    return stored === undefined
      ? undefined
      : { count: stored.count, data: decodeHalf(stored.halves) };
  }

  private read(): void {
    const d = this.encoder.dimension;
    const bytes = readFileSync(this.file);
    let offset = 0;
    while (offset + 34 <= bytes.length) {
      const count = bytes.readUInt16LE(offset + 32);
      const end = offset + 32 + tokenStatesByteLength(count, d);
      if (end > bytes.length) break;
      const hash = bytes.subarray(offset, offset + 32).toString('hex');
      this.states.set(hash, tokenHalvesFromBytes(bytes.subarray(offset + 32, end), d));
      offset = end;
    }
    // A torn last record (killed mid-append) is cut off, so the next append starts on a record
    // boundary; its text is encoded again.
    if (offset < bytes.length) truncateSync(this.file, offset);
  }
}
