/**
 * A separate ingest process for crash tests: configured from the environment like the service;
 * with CRASH_AFTER_STORE=1 it SIGKILLs itself right after the first batch's database commit,
 * before the offsets are committed.
 */
import 'reflect-metadata';
import { loadConfig } from '../../src/config/config';
import { startIngest } from './ingest-helpers';

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const crash = process.env.CRASH_AFTER_STORE === '1';
  await startIngest(config, {
    afterStore: (topic) => {
      if (crash && topic.endsWith('user.events')) process.kill(process.pid, 'SIGKILL');
    },
  });
  process.stdout.write('ready\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`);
  process.exit(1);
});
