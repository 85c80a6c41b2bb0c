import { Random } from '../../../src/synthetic/prng';
import type { TokenStates } from '../../../src/common/token-states';
import type { TextEncoder, TokenEncoder } from '../../../src/modules/embedding/text-encoder';

/**
 * A fast, deterministic, loosely semantic stand-in for the sentence encoder: a bag of words where
 * every word owns a seeded random direction, so texts sharing words get similar unit vectors.
 * For tests and quick evaluation runs without the ONNX model.
 */
export class HashingTextEncoder implements TextEncoder, TokenEncoder {
  readonly modelId: string;
  private readonly words = new Map<string, Float32Array>();

  constructor(readonly dimension = 384) {
    this.modelId = `hashing-bow:${dimension}`;
  }

  encode(texts: readonly string[]): Promise<Float32Array[]> {
    return Promise.resolve(texts.map((text) => this.vector(text)));
  }

  /** One token per word: the word's direction (the first `maxTokens` words). */
  encodeTokens(texts: readonly string[], maxTokens: number): Promise<TokenStates[]> {
    return Promise.resolve(
      texts.map((text) => {
        const words = (text.toLowerCase().match(/[a-z0-9]+/g) ?? []).slice(0, maxTokens);
        const data = new Float32Array(words.length * this.dimension);
        words.forEach((word, t) => {
          data.set(this.direction(word), t * this.dimension);
        });
        return { count: words.length, data };
      }),
    );
  }

  private vector(text: string): Float32Array {
    const out = new Float32Array(this.dimension);
    for (const word of text.toLowerCase().match(/[a-z0-9]+/g) ?? []) {
      const direction = this.direction(word);
      for (let i = 0; i < out.length; i++) out[i] += direction[i];
    }
    const norm = Math.sqrt(out.reduce((sum, x) => sum + x * x, 0)) || 1;
    return out.map((x) => x / norm);
  }

  private direction(word: string): Float32Array {
    let vector = this.words.get(word);
    if (vector === undefined) {
      const random = new Random(`word:${word}`);
      vector = Float32Array.from({ length: this.dimension }, () => random.next() - 0.5);
      this.words.set(word, vector);
    }
    return vector;
  }
}
