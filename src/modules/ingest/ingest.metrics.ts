import type { Counter, Gauge } from 'prom-client';
import { Metrics } from '../metrics/metrics.registry';

/** The ingest module's Prometheus metrics, registered once per registry. */
export class IngestMetrics {
  readonly messages: Counter<'topic' | 'outcome'>;
  readonly onlineStale: Gauge;
  readonly batchDuration;

  constructor(metrics: Metrics) {
    this.messages = metrics.counter(
      'ingest_messages_total',
      'Consumed messages by outcome (stored, duplicate, dead_lettered, expired)',
      ['topic', 'outcome'],
    );
    this.onlineStale = metrics.gauge(
      'ingest_online_state_stale',
      '1 while stored events still owe their Redis online-state update',
    );
    this.batchDuration = metrics.histogram(
      'ingest_batch_duration_seconds',
      'Time to validate, store and apply one batch',
      ['topic'],
      [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    );
  }
}
