import { Counter, Gauge } from 'prom-client';
import { Metrics } from '../metrics/metrics.registry';

/** The ingest module's Prometheus metrics, registered once per registry. */
export class IngestMetrics {
  readonly messages: Counter<'topic' | 'outcome'>;
  readonly onlineStale: Gauge;
  readonly batchDuration;

  constructor(metrics: Metrics) {
    const registry = metrics.registry;
    this.messages =
      (registry.getSingleMetric('ingest_messages_total') as
        Counter<'topic' | 'outcome'> | undefined) ??
      new Counter({
        name: 'ingest_messages_total',
        help: 'Consumed messages by outcome (stored, duplicate, dead_lettered, stale)',
        labelNames: ['topic', 'outcome'],
        registers: [registry],
      });
    this.onlineStale =
      (registry.getSingleMetric('ingest_online_state_stale') as Gauge | undefined) ??
      new Gauge({
        name: 'ingest_online_state_stale',
        help: '1 while stored events still owe their Redis online-state update',
        registers: [registry],
      });
    this.batchDuration = metrics.histogram(
      'ingest_batch_duration_seconds',
      'Time to validate, store and apply one batch',
      ['topic'],
      [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    );
  }
}
