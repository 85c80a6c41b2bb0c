import { Abandon } from './abandon';

describe('Abandon', () => {
  it('aborts the signal work took before the abort', () => {
    const abandon = new Abandon();
    const { signal } = abandon;
    expect(signal.aborted).toBe(false);
    abandon.abort(new Error('timed out'));
    expect(signal.aborted).toBe(true);
    expect(abandon.aborted).toBe(true);
  });

  it('gives work that asks only after the abort an aborted signal with the reason', () => {
    const abandon = new Abandon();
    const reason = new Error('timed out');
    abandon.abort(reason);
    expect(abandon.signal.aborted).toBe(true);
    expect(abandon.signal.reason).toBe(reason);
  });

  it('keeps the first abort’s reason', () => {
    const abandon = new Abandon();
    abandon.abort(new Error('first'));
    abandon.abort(new Error('second'));
    expect((abandon.signal.reason as Error).message).toBe('first');
  });
});
