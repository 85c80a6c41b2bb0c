import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { itemTextHash } from '../../embedding/item-text';
import { encodeEach, TextEncoder } from '../../embedding/text-encoder';

const CHUNK = 64;

/**
 * Encoder vectors on disk by text hash, so evaluation encodes each distinct text once per encoder:
 * `<root>/<encoder id>/vectors.bin`, records of 32 raw sha256 bytes + `dimension` float32 (LE).
 * Appended chunk by chunk, so an interrupted run keeps what it encoded.
 */
export class DiskVectorCache {
  private readonly file: string;
  private readonly vectors = new Map<string, Float32Array>();

  constructor(
    root: string,
    private readonly encoder: TextEncoder,
  ) {
    const dir = path.join(root, encoder.modelId.replace(/[^A-Za-z0-9._-]+/g, '_'));
    mkdirSync(dir, { recursive: true });
    this.file = path.join(dir, 'vectors.bin');
    if (existsSync(this.file)) this.read();
  }

  get size(): number {
    return this.vectors.size;
  }

  /** Vectors for `texts` (same order), encoding only the ones not cached yet. */
  async encode(
    texts: readonly string[],
    onProgress?: (done: number, total: number) => void,
  ): Promise<Float32Array[]> {
    const hashes = texts.map((text) => itemTextHash(text));
    const missing = new Map<string, string>();
    hashes.forEach((hash, i) => {
      if (!this.vectors.has(hash)) missing.set(hash, texts[i]);
    });
    const todo = [...missing];
    for (let start = 0; start < todo.length; start += CHUNK) {
      const chunk = todo.slice(start, start + CHUNK);
      const vectors = await encodeEach(
        this.encoder,
        chunk.map(([, text]) => text),
      );
      const d = this.encoder.dimension;
      const record = Buffer.alloc(chunk.length * (32 + d * 4));
      chunk.forEach(([hash], i) => {
        const vector = vectors[i];
        this.vectors.set(hash, vector);
        const offset = i * (32 + d * 4);
        Buffer.from(hash, 'hex').copy(record, offset);
        for (let j = 0; j < d; j++) record.writeFloatLE(vector[j], offset + 32 + j * 4);
      });
      appendFileSync(this.file, record);
      onProgress?.(Math.min(start + CHUNK, todo.length), todo.length);
    }
    return hashes.map((hash) => this.vectors.get(hash) ?? new Float32Array(this.encoder.dimension));
  }

  private read(): void {
    const d = this.encoder.dimension;
    const size = 32 + d * 4;
    const bytes = readFileSync(this.file);
    // A torn last record (killed mid-append) is ignored and re-encoded.
    for (let offset = 0; offset + size <= bytes.length; offset += size) {
      const hash = bytes.subarray(offset, offset + 32).toString('hex');
      const vector = new Float32Array(d);
      for (let j = 0; j < d; j++) vector[j] = bytes.readFloatLE(offset + 32 + j * 4);
      this.vectors.set(hash, vector);
    }
  }
}
