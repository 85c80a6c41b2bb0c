import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { processAlive } from './processes';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../..');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => {
      resolve(false);
    });
    server.listen(port, '127.0.0.1', () => {
      server.close(() => {
        resolve(true);
      });
    });
  });
}

/** A free broker port whose controller port (the next one) is free too. */
async function freePortPair(from: number): Promise<number> {
  for (let port = from; port < from + 200; port += 2) {
    if ((await portFree(port)) && (await portFree(port + 1))) return port;
  }
  throw new Error(`no two free consecutive ports in ${from}-${from + 200}`);
}

/**
 * A throwaway single-node Kafka broker (scripts/stack.sh with its own port and state folder) that
 * a test may stop and restart; the shared broker is never touched. Its data survives `stop()`.
 */
export class PrivateKafka {
  port = 0;
  private dir: string | undefined;

  get brokers(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Starts the broker (formatting its storage the first time); fails naming the broker log. */
  async start(): Promise<void> {
    if (this.dir === undefined) {
      this.dir = await mkdtemp(path.join(os.tmpdir(), 'recsys-kafka-fault-'));
      this.port = await freePortPair(19192);
    }
    await this.stack('up');
  }

  /** Stops the broker cleanly (SIGTERM, as a rolling restart does); the data stays. */
  async stop(): Promise<void> {
    if (this.dir !== undefined) await this.stack('down');
  }

  /**
   * Freezes the broker (SIGSTOP): its connections stay open and the kernel still accepts their
   * data, but nothing is answered, as with a host that hangs or a network that drops silently.
   */
  async freeze(): Promise<void> {
    process.kill(await this.pid(), 'SIGSTOP');
  }

  /** Lets a frozen broker run again. */
  async thaw(): Promise<void> {
    process.kill(await this.pid(), 'SIGCONT');
  }

  /** Kills the broker (no clean shutdown: its data goes too) and removes its data. */
  async destroy(): Promise<void> {
    const dir = this.dir;
    if (dir === undefined) return;
    try {
      const pid = await this.pid().catch(() => 0);
      if (pid > 0 && processAlive(pid)) {
        process.kill(pid, 'SIGKILL');
        for (let i = 0; i < 100 && processAlive(pid); i++) await sleep(100);
      }
    } finally {
      this.dir = undefined;
      await rm(dir, { recursive: true, force: true });
    }
  }

  private async pid(): Promise<number> {
    const file = path.join(this.dir ?? '', 'kafka.pid');
    const pid = Number((await readFile(file, 'utf8')).trim());
    if (!(pid > 0)) throw new Error(`no broker pid in ${file}`);
    return pid;
  }

  private async stack(command: 'up' | 'down'): Promise<void> {
    const dir = this.dir ?? '';
    try {
      await run('bash', [path.join(ROOT, 'scripts/stack.sh'), command], {
        cwd: ROOT,
        env: {
          ...process.env,
          KAFKA_PORT: String(this.port),
          KAFKA_CONTROLLER_PORT: String(this.port + 1),
          STACK_DIR: dir,
          KAFKA_READY_TIMEOUT: '90',
        },
        timeout: 150_000,
      });
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error);
      throw new Error(
        `private Kafka broker on port ${this.port} failed to ${command} (log: ${dir}/kafka.log): ${detail}`,
      );
    }
  }
}
