import { ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import type { GraphqlBody } from './balanced-load';
import { compiled, serverNodeArgs } from './built-servers';

const ROOT = path.join(__dirname, '..', '..');
const STARTUP_TIMEOUT_MS = 180_000;

/** One GraphQL call with an API key; throws on any error in the answer. */
export async function graphql<T>(
  endpoint: string,
  apiKey: string,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<T> {
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': apiKey },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as GraphqlBody<T>;
  if (body.errors || !body.data) throw new Error(JSON.stringify(body.errors ?? body));
  return body.data;
}

/** A role of the service in a process of its own (`node main.js <role>`). */
export interface Role {
  readonly name: string;
  readonly role: 'api' | 'ingest' | 'train';
  readonly port: number;
  readonly child: ChildProcess;
}

/** `node main.js <role>` (compiled, as the image runs it): its own process, event loop and connections. */
export function startRole(
  name: string,
  role: Role['role'],
  port: number,
  env: NodeJS.ProcessEnv,
): Role {
  const child = spawn(process.execPath, [...serverNodeArgs(), compiled('src/main.ts'), role], {
    cwd: ROOT,
    env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const prefixLines = (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) {
      if (line.length > 0) process.stderr.write(`[${name}] ${line}\n`);
    }
  };
  child.stdout.on('data', prefixLines);
  child.stderr.on('data', prefixLines);
  return { name, role, port, child };
}

/** Resolves once the role answers /health/live; throws if it exits or takes too long. */
export async function waitReady(role: Role): Promise<void> {
  const started = Date.now();
  for (;;) {
    if (role.child.exitCode !== null) {
      throw new Error(`${role.name} exited with ${String(role.child.exitCode)}`);
    }
    try {
      const response = await fetch(`http://127.0.0.1:${role.port}/health/live`);
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() - started > STARTUP_TIMEOUT_MS) throw new Error(`${role.name} did not start`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** SIGTERM, then SIGKILL after 10 s; resolves once the process has exited. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      resolve();
    });
  });
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
