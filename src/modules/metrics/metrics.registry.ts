import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The process's Prometheus registry and the metrics shared across modules. */
export class Metrics {
  readonly registry = new Registry();
  readonly graphqlDuration: Histogram<'operation' | 'outcome'>;

  constructor(defaultLabels: Record<string, string>) {
    this.registry.setDefaultLabels(defaultLabels);
    collectDefaultMetrics({ register: this.registry });
    this.graphqlDuration = new Histogram({
      name: 'graphql_request_duration_seconds',
      help: 'GraphQL request latency by operation (operation name, or the first root field)',
      labelNames: ['operation', 'outcome'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [this.registry],
    });
  }

  histogram<L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    buckets?: number[],
  ): Histogram<L> {
    const existing = this.registry.getSingleMetric(name);
    if (existing) return existing as Histogram<L>;
    return new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
  }

  counter<L extends string = never>(
    name: string,
    help: string,
    labelNames: readonly L[] = [],
  ): Counter<L> {
    const existing = this.registry.getSingleMetric(name);
    if (existing) return existing as Counter<L>;
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  /** A gauge with labels, set by its owner. */
  labelledGauge<L extends string>(name: string, help: string, labelNames: readonly L[]): Gauge<L> {
    const existing = this.registry.getSingleMetric(name);
    if (existing) return existing as Gauge<L>;
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  /**
   * A gauge set by its owner; `read`, when given, sets it on every scrape instead. A `read` that
   * fails (its database away) leaves the last value: the scrape itself must not fail.
   */
  gauge(name: string, help: string, read?: () => number | Promise<number>): Gauge {
    const existing = this.registry.getSingleMetric(name);
    if (existing) return existing as Gauge;
    const gauge: Gauge = new Gauge({
      name,
      help,
      registers: [this.registry],
      ...(read === undefined
        ? {}
        : {
            collect: async () => {
              try {
                gauge.set(await read());
              } catch {
                // Keeps the last value; the owner's health check reports the cause.
              }
            },
          }),
    });
    return gauge;
  }
}
