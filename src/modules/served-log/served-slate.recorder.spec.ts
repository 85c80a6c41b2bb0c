import { setTimeout as sleep } from 'node:timers/promises';
import { Writable } from 'node:stream';
import pino from 'pino';
import { loadConfig } from '../../config/config';
import { ShutdownDeadline } from '../../common/shutdown-deadline';
import { Metrics } from '../metrics/metrics.registry';
import { FakeServedSlatePublisher } from '../../../test/support/fakes/served-slate-publisher';
import type { ServedSlate } from './served-slate';
import { ServedSlateOutcome, ServedSlateRecorder } from './served-slate.recorder';

function slate(index: number, items = 3, features = 2): ServedSlate {
  return {
    requestId: `req-${index}`,
    userId: `user-${index % 4}`,
    operation: index % 2 === 0 ? 'rank' : 'recommend',
    servedAt: Date.UTC(2025, 0, 1) + index,
    modelVersion: '3',
    profile: 'default',
    experiment: null,
    candidates: items,
    features: Array.from({ length: features }, (_, f) => `f${f}`),
    itemIds: Array.from({ length: items }, (_, i) => `item-${i}`),
    scores: new Float64Array(items).map((_, i) => items - i),
    values: new Float64Array(items * features).map((_, v) => v / 10),
  };
}

interface Setup {
  readonly recorder: ServedSlateRecorder;
  readonly publisher: FakeServedSlatePublisher;
  readonly metrics: Metrics;
  readonly warnings: string[];
}

function setup(env: Record<string, string> = {}): Setup {
  const config = loadConfig({
    SERVED_LOG_FLUSH_MS: '20',
    SERVED_LOG_BATCH: '4',
    SERVED_LOG_BUFFER: '10',
    SERVED_LOG_DEPTH: '2',
    ...env,
  });
  const warnings: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      warnings.push((JSON.parse(chunk.toString()) as { msg: string }).msg);
      done();
    },
  });
  const publisher = new FakeServedSlatePublisher();
  const metrics = new Metrics({});
  const recorder = new ServedSlateRecorder(
    publisher,
    config,
    pino({ level: 'warn' }, sink),
    metrics,
    new ShutdownDeadline(config.shutdownTimeoutMs),
  );
  return { recorder, publisher, metrics, warnings };
}

async function counts(metrics: Metrics): Promise<Partial<Record<ServedSlateOutcome, number>>> {
  const metric = metrics.registry.getSingleMetric('served_log_slates_total');
  const values = (await metric?.get())?.values ?? [];
  return Object.fromEntries(
    values
      .filter((entry) => entry.value > 0)
      .map((entry): [string, number] => [String(entry.labels.outcome), entry.value]),
  );
}

async function gauge(metrics: Metrics): Promise<number | undefined> {
  const metric = metrics.registry.getSingleMetric('served_log_buffer_slates');
  return (await metric?.get())?.values[0]?.value;
}

describe('ServedSlateRecorder', () => {
  it('sends nothing on record, then one batch after SERVED_LOG_FLUSH_MS, keyed by user', async () => {
    const { recorder, publisher, metrics } = setup();
    recorder.record(slate(1));
    recorder.record(slate(2));
    expect(publisher.batches).toHaveLength(0);
    expect(await gauge(metrics)).toBe(2);
    await sleep(60);
    expect(publisher.batches).toHaveLength(1);
    expect(publisher.messages.map((message) => message.key)).toEqual(['user-1', 'user-2']);
    expect(publisher.values().map((value) => value.requestId)).toEqual(['req-1', 'req-2']);
    expect(await counts(metrics)).toEqual({ sent: 2 });
    expect(await gauge(metrics)).toBe(0);
  });

  it('sends a full batch at once, and cuts each slate to SERVED_LOG_DEPTH items', async () => {
    const { recorder, publisher } = setup({ SERVED_LOG_FLUSH_MS: '60000' });
    for (let index = 0; index < 4; index++) recorder.record(slate(index, 5));
    await sleep(10);
    expect(publisher.batches.map((batch) => batch.length)).toEqual([4]);
    const [first] = publisher.values() as { candidates: number; itemIds: string[] }[];
    expect(first.candidates).toBe(5);
    expect(first.itemIds).toEqual(['item-0', 'item-1']);
  });

  it('keeps one send in flight; drops and counts what exceeds the buffer meanwhile', async () => {
    const { recorder, publisher, metrics, warnings } = setup({ SERVED_LOG_FLUSH_MS: '60000' });
    publisher.hold();
    for (let index = 0; index < 4; index++) recorder.record(slate(index));
    await sleep(10);
    // The first batch is in flight; the buffer (10) fills behind it, the rest is dropped.
    for (let index = 4; index < 20; index++) recorder.record(slate(index));
    expect(await gauge(metrics)).toBe(10);
    expect(await counts(metrics)).toEqual({ dropped_buffer_full: 6 });
    publisher.release();
    await recorder.drain();
    expect(publisher.batches.map((batch) => batch.length)).toEqual([4, 4, 4, 2]);
    expect(publisher.values().map((value) => value.requestId)).toEqual(
      Array.from({ length: 14 }, (_, index) => `req-${index}`),
    );
    expect(await counts(metrics)).toEqual({ sent: 14, dropped_buffer_full: 6 });
    expect(warnings).toEqual([expect.stringContaining('served slates dropped')]);
  });

  it('drops a batch whose send failed, without retrying it, and warns at most every 10 s', async () => {
    const { recorder, publisher, metrics, warnings } = setup();
    publisher.fail = true;
    for (let index = 0; index < 6; index++) recorder.record(slate(index));
    await recorder.drain();
    recorder.record(slate(6));
    await recorder.drain();
    expect(await counts(metrics)).toEqual({ dropped_send_failed: 7 });
    expect(warnings).toHaveLength(1);
    publisher.fail = false;
    recorder.record(slate(7));
    await recorder.drain();
    expect(publisher.values().map((value) => value.requestId)).toEqual(['req-7']);
    expect(await counts(metrics)).toEqual({ sent: 1, dropped_send_failed: 7 });
  });

  it('drops and counts a slate too large for one message, sending the rest of its batch', async () => {
    const { recorder, publisher, metrics } = setup({ SERVED_LOG_DEPTH: '1000' });
    recorder.record(slate(1));
    // About 1.4 MB encoded: 256,000 float32 values in base64.
    recorder.record(slate(2, 1000, 256));
    recorder.record(slate(3));
    await recorder.drain();
    expect(publisher.values().map((value) => value.requestId)).toEqual(['req-1', 'req-3']);
    expect(await counts(metrics)).toEqual({ sent: 2, dropped_too_large: 1 });
  });

  it('records nothing and asks for no items when SERVED_LOG_ENABLED=false', async () => {
    const { recorder, publisher, metrics } = setup({ SERVED_LOG_ENABLED: 'false' });
    expect(recorder.depth).toBe(0);
    recorder.record(slate(1));
    await sleep(40);
    expect(publisher.batches).toHaveLength(0);
    expect(await gauge(metrics)).toBe(0);
    expect(await counts(metrics)).toEqual({});
  });

  it('flushes what is queued at shutdown and counts what arrives after', async () => {
    const { recorder, publisher, metrics } = setup({ SERVED_LOG_FLUSH_MS: '60000' });
    expect(recorder.depth).toBe(2);
    for (let index = 0; index < 6; index++) recorder.record(slate(index));
    await recorder.beforeApplicationShutdown();
    expect(publisher.messages).toHaveLength(6);
    recorder.record(slate(6));
    expect(await counts(metrics)).toEqual({ sent: 6, dropped_shutdown: 1 });
  });

  it('gives up the final flush after its bound when Kafka does not answer', async () => {
    const { recorder, publisher, metrics } = setup({
      SERVED_LOG_FLUSH_MS: '60000',
      SHUTDOWN_TIMEOUT_MS: '200',
    });
    publisher.hold();
    for (let index = 0; index < 6; index++) recorder.record(slate(index));
    const started = performance.now();
    await recorder.beforeApplicationShutdown();
    expect(performance.now() - started).toBeLessThan(1000);
    // Four were in the held send; the two still queued are given up.
    expect(await counts(metrics)).toEqual({ dropped_shutdown: 2 });
    publisher.release();
  });
});
