import { ShutdownDeadline, ShutdownStep } from './shutdown-deadline';

describe('ShutdownDeadline', () => {
  const clock = () => {
    let nowMs = 1_000;
    return {
      now: () => nowMs,
      advance: (ms: number) => {
        nowMs += ms;
      },
    };
  };

  it('gives each step a fifth of the grace period while the deadline is far', () => {
    const { now, advance } = clock();
    const deadline = new ShutdownDeadline(10_000, now);
    deadline.onModuleDestroy();
    expect(deadline.within()).toBe(2_000);
    advance(2_000);
    expect(deadline.within()).toBe(2_000);
    expect(deadline.within(500)).toBe(500);
  });

  it('never past the deadline, nine tenths of the grace period after the shutdown began', () => {
    const { now, advance } = clock();
    const deadline = new ShutdownDeadline(10_000, now);
    deadline.onModuleDestroy();
    advance(8_000);
    expect(deadline.within()).toBe(1_000);
    expect(deadline.within(5_000)).toBe(1_000);
    advance(1_500);
    expect(deadline.within()).toBe(0);
  });

  it('waits for work as one step, then goes on without it', async () => {
    const deadline = new ShutdownDeadline(500);
    const started = performance.now();
    await deadline.wait(new Promise(() => undefined), 'work that never ends');
    const waitedMs = performance.now() - started;
    expect(waitedMs).toBeGreaterThanOrEqual(95);
    expect(waitedMs).toBeLessThan(400);
  });

  it('begins at the first step asked about when no shutdown hook began it', () => {
    const { now, advance } = clock();
    const deadline = new ShutdownDeadline(10_000, now);
    advance(60_000);
    expect(deadline.within()).toBe(2_000);
    advance(7_000);
    expect(deadline.within()).toBe(2_000);
    advance(1_000);
    expect(deadline.within()).toBe(1_000);
  });
});

describe('ShutdownStep', () => {
  it('runs once, from whichever hook comes first', async () => {
    const run = jest.fn(() => Promise.resolve());
    const step = new ShutdownStep(run);
    const begun = step.begin();
    await step.begin();
    await begun;
    expect(run).toHaveBeenCalledTimes(1);
  });

  it('gives its failure to the hook that awaits it, not to the process', async () => {
    const step = new ShutdownStep(() => Promise.reject(new Error('close failed')));
    const unhandled = jest.fn();
    process.on('unhandledRejection', unhandled);
    try {
      void step.begin();
      await new Promise((resolve) => setImmediate(resolve));
      await expect(step.begin()).rejects.toThrow('close failed');
      expect(unhandled).not.toHaveBeenCalled();
    } finally {
      process.off('unhandledRejection', unhandled);
    }
  });
});
