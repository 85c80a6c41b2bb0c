import http from 'node:http';

/**
 * POSTs `body` to `target` over `agent`; `answered` gets the status and the whole answer as text,
 * `broken` an error while the answer was arriving. Returns the request (sent): its `error` event
 * is a failure before any answer.
 */
export function postBody(
  agent: http.Agent | undefined,
  target: URL,
  headers: Readonly<Record<string, string>>,
  body: string,
  answered: (status: number | undefined, text: string) => void,
  broken?: (error: NodeJS.ErrnoException) => void,
): http.ClientRequest {
  const request = http.request(
    {
      agent,
      host: target.hostname,
      port: target.port,
      path: target.pathname,
      method: 'POST',
      headers: { ...headers, 'content-length': Buffer.byteLength(body) },
    },
    (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      if (broken !== undefined) response.on('error', broken);
      response.on('end', () => {
        answered(response.statusCode, Buffer.concat(chunks).toString());
      });
    },
  );
  request.end(body);
  return request;
}
