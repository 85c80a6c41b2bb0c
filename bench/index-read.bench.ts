import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Pool } from 'pg';
import { loadConfig } from '../src/config/config';
import { PgBulkReader } from '../src/infra/pg-bulk-reader';
import {
  RetrievalIndexRepository,
  StoredIndex,
} from '../src/modules/serving/retrieval-index.repository';
import { databaseUrlFor, dropDatabase, freshDatabase } from './lib/bench-store';
import { Benchmark, integerFlag, progress } from './lib/harness';
import { percentile } from './lib/percentile';
import { measured, ThreadBusy } from './lib/thread-busy';

const DATABASE = 'recsys_bench_index_read';
const MiB = 1024 * 1024;
const SHAPE = { dimension: 32, m: 16, efConstruction: 200, withBias: false };

/**
 * The reference: the read as it ran on the request thread before the bulk reader's thread
 * (pg decoding each slice into a string, then base64 into a new buffer, on this thread).
 */
async function readOnThisThread(pool: Pool, stored: StoredIndex, file: string): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(file, 'w');
  try {
    for (let seq = 0, written = 0; written < stored.size; seq += 16) {
      const { rows } = await pool.query<{ base64: string }>(
        `SELECT encode(bytes, 'base64') AS base64 FROM retrieval_index_chunks
          WHERE index_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq`,
        [stored.indexId, seq, seq + 16],
      );
      if (rows.length === 0) break;
      for (const { base64 } of rows) {
        const bytes = Buffer.from(base64, 'base64');
        hash.update(bytes);
        await handle.write(bytes);
        written += bytes.length;
      }
    }
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

/**
 * `npm run bench -- index-read [--mib 555] [--runs 3]`: a stored ANN index file of that size
 * (555 MiB is 300,000 items' with 384-d vectors) read back from PostgreSQL on the request thread
 * (the reference) and on the bulk reader's thread (pg-bulk-reader.ts): the request thread's busy
 * time and event-loop delay during each read, and its wall time.
 */
const benchmark: Benchmark = {
  description:
    'A stored ANN index read back from PostgreSQL: on the request thread, on a thread of its own',
  async run(args) {
    const mib = integerFlag(args, 'mib', 555, 1);
    const runs = integerFlag(args, 'runs', 3, 1);
    const config = loadConfig(process.env).postgres;
    const databaseUrl = databaseUrlFor(config.directUrl, DATABASE);
    await freshDatabase(databaseUrl);
    const pool = new Pool({ connectionString: databaseUrl, max: 2 });
    const reader = new PgBulkReader({ ...config, url: databaseUrl, directUrl: databaseUrl });
    const repository = new RetrievalIndexRepository(pool, reader);
    const dir = await mkdtemp(path.join(tmpdir(), 'index-read-'));
    const reads: ThreadBusy[] = [];
    try {
      progress(`storing a ${mib} MiB file`);
      const source = path.join(dir, 'stored');
      const handle = await open(source, 'w');
      for (let i = 0; i < mib; i++) await handle.write(randomBytes(MiB));
      await handle.close();
      await pool.query(
        `INSERT INTO model_versions (id, status, encoder_id, triggered_by) OVERRIDING SYSTEM VALUE
         VALUES (1, 'active', 'bench', 'bench')`,
      );
      const quality = { recall: 1, graphRecall: 1, graphDrift: 0, adoptedFrom: undefined };
      const { signal } = new AbortController();
      await repository.save('1', SHAPE, 'bench', quality, 0, '', source, 1, signal);
      await rm(source);
      const stored = await repository.newest('1');
      if (stored === undefined) throw new Error('the file was not stored');
      const target = path.join(dir, 'read');
      for (let run = 1; run <= runs; run++) {
        progress(`run ${run} of ${runs}`);
        const onThread = await measured('on the request thread (reference)', async () => {
          const sha256 = await readOnThisThread(pool, stored, target);
          if (sha256 !== stored.sha256) throw new Error('the reference read a different file');
        });
        const offThread = await measured('on the bulk reader’s thread', () =>
          repository.readTo(stored, target),
        );
        reads.push(onThread, offThread);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
      await reader.close();
      await pool.end();
      await dropDatabase(databaseUrl);
    }
    const ways = [...new Set(reads.map((read) => read.way))];
    const of = (way: string) => reads.filter((read) => read.way === way);
    const busy = ways.map((way) =>
      percentile(
        of(way)
          .map((read) => read.busyS)
          .sort((a, b) => a - b),
        50,
      ),
    );
    return {
      title: `A stored index of ${mib} MiB read back from PostgreSQL (${runs} runs each way)`,
      rows: reads.map((read, i) => ({
        run: Math.floor(i / 2) + 1,
        way: read.way,
        'request thread busy s': read.busyS,
        'loop delay p99 ms': read.delayP99Ms,
        'loop delay max ms': read.delayMaxMs,
        'wall s': read.wallS,
      })),
      figures: {
        mib,
        reads,
        busyRatio: busy[0] / busy[1],
      },
      notes: [
        `The request thread's busy time, medians: ${busy[0].toFixed(3)} s on it against ${busy[1].toFixed(3)} s with the bulk reader's thread, ${(busy[0] / busy[1]).toFixed(0)}× less.`,
        'Busy is the event loop’s active time (performance.eventLoopUtilization) during the read; the delay is how late its 1 ms timer ran.',
      ],
    };
  },
};

export default benchmark;
