import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { cpus as onlineCpus } from 'node:os';
import { createInterface } from 'node:readline';
import { compiled } from './built-servers';

/** The longest gap between a CPU's heartbeats in a window, per CPU (index = CPU number). */
export type LongestGaps = readonly number[];

export interface MachineStalls {
  /** Whether the heartbeats run at real-time priority (SCHED_FIFO 99; needs CAP_SYS_NICE). */
  readonly realTime: boolean;
  /** Per CPU, the longest gap that ended between `from` and `until` (Date.now() ms); NaN: unwatched. */
  longestGaps(from: number, until: number): LongestGaps;
  stop(): void;
}

interface Gap {
  readonly endedAt: number;
  readonly ms: number;
}

/**
 * A heartbeat process on each CPU (bench/lib/cpu-heartbeat.ts), at real-time priority where the
 * bench may set it: a gap in its wake-ups is a stall that no code of this machine caused, the CPU
 * not running at all (on a virtual machine, its host running something else). Without
 * real-time priority a gap may also be that CPU busy with other work.
 */
export function watchMachineStalls(): MachineStalls {
  const realTime = mayRunRealTime();
  // Every CPU of the machine, not this process's: `--pin-server` confines the bench to its own.
  const cpus = onlineCpus().length;
  const gaps: Gap[][] = [];
  const heartbeats: ChildProcess[] = [];
  for (let cpu = 0; cpu < cpus; cpu++) {
    const command = [
      ...(realTime ? ['chrt', '--fifo', '99'] : []),
      process.execPath,
      compiled('bench/lib/cpu-heartbeat.ts'),
    ];
    const heartbeat = spawn('taskset', ['--cpu-list', String(cpu), ...command], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    heartbeats.push(heartbeat);
    const seen: Gap[] = [];
    gaps.push(seen);
    // Without taskset (util-linux) or chrt the CPU goes unwatched: NaN, not a stall-free 0.
    heartbeat.once('error', () => {
      seen.push({ endedAt: Number.NaN, ms: Number.NaN });
    });
    createInterface({ input: heartbeat.stdout }).on('line', (line) => {
      const [endedAt, ms] = line.split(' ');
      seen.push({ endedAt: Number(endedAt), ms: Number(ms) });
    });
  }
  return {
    realTime,
    longestGaps(from, until) {
      return gaps.map((seen) =>
        seen
          .filter(
            (gap) => Number.isNaN(gap.endedAt) || (gap.endedAt >= from && gap.endedAt <= until),
          )
          .reduce((longest, gap) => Math.max(longest, gap.ms), 0),
      );
    },
    stop() {
      for (const heartbeat of heartbeats) heartbeat.kill();
    },
  };
}

function mayRunRealTime(): boolean {
  try {
    execFileSync('chrt', ['--fifo', '99', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
