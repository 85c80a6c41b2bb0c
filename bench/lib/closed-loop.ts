import autocannon from 'autocannon';

/** Throughput and latency of one closed-loop load window. */
export interface Measurement {
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Transport errors, non-2xx answers and timeouts together. */
  readonly errors: number;
}

/**
 * `connections` clients POST the bodies in turn, each sending its next request when the previous
 * one is answered, for `seconds` or until `amount` requests are sent.
 */
export async function closedLoop(
  url: string,
  headers: Record<string, string>,
  bodies: readonly string[],
  options: { readonly seconds?: number; readonly amount?: number; readonly connections: number },
): Promise<Measurement> {
  let next = 0;
  const result = await autocannon({
    url,
    method: 'POST',
    headers,
    connections: options.connections,
    ...(options.amount === undefined ? { duration: options.seconds } : { amount: options.amount }),
    requests: [
      {
        setupRequest: (request) => {
          request.body = bodies[next++ % bodies.length];
          return request;
        },
      },
    ],
  });
  return {
    requestsPerSecond: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.non2xx + result.timeouts,
  };
}
