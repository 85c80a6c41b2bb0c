import { MicroBatcher } from './micro-batcher';

/** A fake encoder: vector = [text length, call number]; records every call. */
function fakeEncoder(
  options: { delayMs?: number; fail?: (texts: readonly string[]) => boolean } = {},
) {
  const calls: string[][] = [];
  const encode = async (texts: readonly string[]): Promise<Float32Array[]> => {
    calls.push([...texts]);
    const call = calls.length;
    await new Promise((resolve) => setTimeout(resolve, options.delayMs ?? 0));
    if (options.fail?.(texts)) throw new Error(`model failed on call ${call}`);
    return texts.map((text) => Float32Array.of(text.length, call));
  };
  return { calls, encode };
}

describe('MicroBatcher', () => {
  it('coalesces concurrent requests into one run and answers each with its own vector', async () => {
    const fake = fakeEncoder();
    const batcher = new MicroBatcher(fake.encode, { maxBatch: 32, maxWaitMs: 5, maxQueued: 1000 });
    const texts = ['a', 'bb', 'ccc', 'dddd', 'eeeee'];
    const vectors = await Promise.all(texts.map((text) => batcher.submit(text)));
    expect(fake.calls).toEqual([texts]);
    expect(vectors.map((vector) => Array.from(vector))).toEqual(
      texts.map((text) => [text.length, 1]),
    );
  });

  it('encodes identical concurrent texts once and gives every caller the vector', async () => {
    const fake = fakeEncoder();
    const batcher = new MicroBatcher(fake.encode, { maxBatch: 32, maxWaitMs: 5, maxQueued: 1000 });
    const vectors = await Promise.all(['x', 'yy', 'x', 'x'].map((text) => batcher.submit(text)));
    expect(fake.calls).toEqual([['x', 'yy']]);
    expect(vectors.map((vector) => vector[0])).toEqual([1, 2, 1, 1]);
  });

  it('closes a batch at maxBatch distinct texts without waiting for the timer', async () => {
    const fake = fakeEncoder({ delayMs: 20 });
    const batcher = new MicroBatcher(fake.encode, {
      maxBatch: 3,
      maxWaitMs: 10_000,
      maxQueued: 1000,
    });
    const texts = ['1', '2', '3', '4', '5', '6', '7'];
    const started = Date.now();
    const pending = texts.map((text) => batcher.submit(text));
    // The 7th text waits for a run of its own: it is released when the second run ends, not by the
    // 10 s timer.
    await Promise.all(pending);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(fake.calls).toEqual([['1', '2', '3'], ['4', '5', '6'], ['7']]);
  });

  it('runs one batch at a time; requests arriving during a run form the next batch', async () => {
    const fake = fakeEncoder({ delayMs: 30 });
    const batcher = new MicroBatcher(fake.encode, { maxBatch: 32, maxWaitMs: 1, maxQueued: 1000 });
    const first = batcher.submit('first');
    await new Promise((resolve) => setTimeout(resolve, 10)); // first run has started
    const later = ['b', 'c', 'd'].map((text) => batcher.submit(text));
    await Promise.all([first, ...later]);
    expect(fake.calls).toEqual([['first'], ['b', 'c', 'd']]);
  });

  it('waits at most about maxWaitMs for company', async () => {
    const fake = fakeEncoder();
    const batcher = new MicroBatcher(fake.encode, { maxBatch: 32, maxWaitMs: 20, maxQueued: 1000 });
    const started = Date.now();
    await batcher.submit('alone');
    const waited = Date.now() - started;
    expect(waited).toBeGreaterThanOrEqual(15);
    expect(waited).toBeLessThan(500);
  });

  it('rejects every waiter of a failed run and serves the next batch normally', async () => {
    const fake = fakeEncoder({ fail: (texts) => texts.includes('boom') });
    const batcher = new MicroBatcher(fake.encode, { maxBatch: 32, maxWaitMs: 2, maxQueued: 1000 });
    const results = await Promise.allSettled(
      ['ok', 'boom', 'ok', 'other'].map((text) => batcher.submit(text)),
    );
    expect(results.map((result) => result.status)).toEqual([
      'rejected',
      'rejected',
      'rejected',
      'rejected',
    ]);
    for (const result of results) {
      if (result.status === 'rejected')
        expect(String(result.reason)).toMatch(/model failed on call 1/);
    }
    await expect(batcher.submit('fine')).resolves.toEqual(Float32Array.of(4, 2));
    expect(batcher.queued).toBe(0);
  });

  it('rejects when the encoder returns the wrong number of vectors', async () => {
    const batcher = new MicroBatcher(() => Promise.resolve([]), {
      maxBatch: 8,
      maxWaitMs: 1,
      maxQueued: 1000,
    });
    await expect(batcher.submit('a')).rejects.toThrow(/0 vectors for 1 texts/);
  });
});

describe('MicroBatcher bounds', () => {
  it('refuses texts beyond the queue bound with RESOURCE_EXHAUSTED, at once', async () => {
    const fake = fakeEncoder({ delayMs: 20 });
    const batcher = new MicroBatcher(fake.encode, { maxBatch: 2, maxWaitMs: 0, maxQueued: 2 });
    const first = batcher.submit('running');
    await new Promise((resolve) => setTimeout(resolve, 5));
    const queued = [batcher.submit('q1'), batcher.submit('q2'), batcher.submit('q1')];
    await expect(batcher.submit('q3')).rejects.toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
    await Promise.all([first, ...queued]);
    expect(fake.calls).toEqual([['running'], ['q1', 'q2']]);
  });

  it('drops the texts of callers that gave up before their run', async () => {
    const fake = fakeEncoder({ delayMs: 20 });
    const batcher = new MicroBatcher(fake.encode, { maxBatch: 8, maxWaitMs: 0, maxQueued: 8 });
    const running = batcher.submit('running');
    await new Promise((resolve) => setTimeout(resolve, 5));
    const controller = new AbortController();
    const abandoned = batcher.submit('abandoned', controller.signal);
    const shared = batcher.submit('shared', controller.signal);
    const kept = batcher.submit('shared');
    controller.abort(new Error('request timed out'));
    await expect(abandoned).rejects.toThrow('request timed out');
    await expect(shared).rejects.toThrow('request timed out');
    await running;
    expect(Array.from(await kept)).toEqual([6, 2]);
    expect(fake.calls).toEqual([['running'], ['shared']]);
    expect(batcher.queued).toBe(0);
  });
});
