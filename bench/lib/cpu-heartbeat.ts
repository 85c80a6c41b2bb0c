/**
 * One CPU's heartbeat, a process of its own that `watchMachineStalls` pins to that CPU at
 * real-time priority: it wakes every millisecond and prints each gap between wake-ups longer
 * than `REPORTED_GAP_MS` as `<wall-clock ms when it ended> <gap ms>`. At SCHED_FIFO 99 nothing
 * else on the machine runs before it, so a long gap is time the CPU itself did not run.
 */
export {};

const REPORTED_GAP_MS = 4;

let last = performance.now();
const beat = () => {
  const now = performance.now();
  const gap = now - last;
  last = now;
  if (gap > REPORTED_GAP_MS) process.stdout.write(`${Date.now().toFixed(0)} ${gap.toFixed(1)}\n`);
  setTimeout(beat, 1);
};
setTimeout(beat, 1);
