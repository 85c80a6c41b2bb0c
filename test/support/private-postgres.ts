import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createLogger } from '../../src/common/logger';
import { migrate } from '../../src/infra/migrator';
import { freePort } from './processes';

const run = promisify(execFile);

/** initdb/pg_ctl of the newest PostgreSQL installed under /usr/lib/postgresql (Debian layout). */
function binDir(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base)
    ? readdirSync(base)
        .filter((name) => existsSync(path.join(base, name, 'bin', 'pg_ctl')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const newest = versions.at(0);
  if (newest === undefined) {
    throw new Error(`PostgreSQL server binaries (initdb, pg_ctl) not found under ${base}`);
  }
  return path.join(base, newest, 'bin');
}

/**
 * A throwaway PostgreSQL server (own data folder, port and socket folder, trust auth) that a test
 * may stop and restart; the shared server is never touched. initdb refuses to run as root, so as
 * root the binaries run as the `postgres` user.
 */
export class PrivatePostgres {
  port = 0;
  private dir: string | undefined;
  private readonly bin = binDir();
  private readonly asRoot = process.getuid?.() === 0;

  private get dataDir(): string {
    return path.join(this.dir ?? '', 'data');
  }

  /** A URL for `database` on this server. */
  url(database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  /** Creates the cluster the first time, then starts the server and waits until it accepts. */
  async start(): Promise<void> {
    if (this.dir === undefined) {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'recsys-pg-fault-'));
      this.dir = dir;
      this.port = await freePort();
      if (this.asRoot) {
        const { stdout } = await run('id', ['-u', 'postgres']);
        const { stdout: gid } = await run('id', ['-g', 'postgres']);
        await chown(dir, Number(stdout.trim()), Number(gid.trim()));
      }
      await this.pg('initdb', [
        '-D',
        this.dataDir,
        '-A',
        'trust',
        '-U',
        'postgres',
        '-E',
        'UTF8',
        '--no-sync',
      ]);
    }
    await this.pg('pg_ctl', [
      '-D',
      this.dataDir,
      '-l',
      path.join(this.dir, 'postgres.log'),
      '-w',
      '-t',
      '60',
      '-o',
      // fsync off: the tests stop the server, never the machine.
      `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off`,
      'start',
    ]);
  }

  /** Stops the server (`fast`: open sessions are terminated, as on a restart). */
  async stop(mode: 'smart' | 'fast' | 'immediate' = 'fast'): Promise<void> {
    if (this.dir === undefined) return;
    await this.pg('pg_ctl', ['-D', this.dataDir, '-m', mode, '-w', '-t', '60', 'stop']);
  }

  async restart(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await this.stop(mode);
    await this.start();
  }

  /** Creates `database` and applies the project's migrations to it; returns its URL. */
  async migrated(database: string): Promise<string> {
    const url = this.url(database);
    await migrate(url, createLogger('warn'));
    return url;
  }

  /** Stops the server (if running) and removes its files. */
  async destroy(): Promise<void> {
    const dir = this.dir;
    if (dir === undefined) return;
    try {
      await this.pg('pg_ctl', ['-D', this.dataDir, '-m', 'immediate', '-w', 'stop']).catch(
        () => undefined,
      );
    } finally {
      this.dir = undefined;
      await rm(dir, { recursive: true, force: true });
    }
  }

  private async pg(program: 'initdb' | 'pg_ctl', args: readonly string[]): Promise<void> {
    const binary = path.join(this.bin, program);
    const [command, argv] = this.asRoot
      ? ['runuser', ['-u', 'postgres', '--', binary, ...args]]
      : [binary, [...args]];
    try {
      // cwd: the postgres user may not be allowed into the caller's folder.
      await run(command, argv, { timeout: 90_000, cwd: this.dir ?? os.tmpdir() });
    } catch (error) {
      const log = await readFile(path.join(this.dir ?? '', 'postgres.log'), 'utf8').catch(() => '');
      const detail = error instanceof Error ? error.message : String(error);
      throw new Error(
        `private PostgreSQL ${program} ${args.at(-1) ?? ''} failed: ${detail}\n${log.slice(-2000)}`,
      );
    }
  }
}
