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
  /** Per CPU, the median µs of its heartbeat's fixed probe between `from` and `until`; NaN: none. */
  probeMicros(from: number, until: number): readonly number[];
  stop(): void;
}

interface Gap {
  readonly endedAt: number;
  readonly ms: number;
}

interface Probe {
  readonly endedAt: number;
  readonly micros: number;
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
  const probes: Probe[][] = [];
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
    const timed: Probe[] = [];
    probes.push(timed);
    // Without taskset (util-linux) or chrt the CPU goes unwatched: NaN, not a stall-free 0.
    heartbeat.once('error', () => {
      seen.push({ endedAt: Number.NaN, ms: Number.NaN });
    });
    createInterface({ input: heartbeat.stdout }).on('line', (line) => {
      const fields = line.split(' ');
      if (fields[0] === 'probe') {
        timed.push({ endedAt: Number(fields[1]), micros: Number(fields[2]) });
      } else {
        seen.push({ endedAt: Number(fields[0]), ms: Number(fields[1]) });
      }
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
    probeMicros(from, until) {
      return probes.map((timed) => {
        const inWindow = timed
          .filter((probe) => probe.endedAt >= from && probe.endedAt <= until)
          .map((probe) => probe.micros)
          .sort((a, b) => a - b);
        return inWindow.length === 0 ? Number.NaN : inWindow[Math.floor(inWindow.length / 2)];
      });
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
