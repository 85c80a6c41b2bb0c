import type { VectorIndexBuilder } from '../../../src/modules/serving/retrieval';

/**
 * The real index builder, whose builds can be held: while held, a build finishes only once
 * released (or abandoned by its signal), so a test can look at serving during a long build.
 */
export class HeldIndexBuilder {
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  /** Builds started so far. */
  started = 0;

  constructor(private readonly real: VectorIndexBuilder) {}

  readonly build: VectorIndexBuilder = async (source, signal, progress) => {
    this.started++;
    const index = await this.real(source, signal, progress);
    if (this.gate !== undefined) {
      const abandoned = new Promise<void>((resolve) => {
        signal.addEventListener(
          'abort',
          () => {
            resolve();
          },
          { once: true },
        );
      });
      await Promise.race([this.gate, abandoned]);
    }
    return index;
  };

  hold(): void {
    this.gate ??= new Promise((resolve) => {
      this.open = resolve;
    });
  }

  release(): void {
    this.open?.();
    this.gate = undefined;
    this.open = undefined;
  }
}
