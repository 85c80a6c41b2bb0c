import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { IncomingHttpHeaders } from 'node:http';

export interface GraphqlError {
  readonly message: string;
  readonly path?: readonly (string | number)[];
  readonly extensions: { readonly code?: string } & Record<string, unknown>;
}

export interface GraphqlResponse<T> {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** Absent when the response had none (or `null`). */
  readonly data?: T;
  readonly errors?: GraphqlError[];
}

/** The one GraphQL client of the tests: a POST to /graphql through Fastify's inject. */
export async function graphql<T = Record<string, unknown>>(
  app: NestFastifyApplication,
  query: string,
  variables: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Promise<GraphqlResponse<T>> {
  const response = await app.inject({
    method: 'POST',
    url: '/graphql',
    headers: { 'content-type': 'application/json', ...headers },
    payload: { query, variables },
  });
  const body = response.json<{ data?: T | null; errors?: GraphqlError[] }>();
  return {
    status: response.statusCode,
    headers: response.headers as IncomingHttpHeaders,
    data: body.data ?? undefined,
    errors: body.errors,
  };
}
