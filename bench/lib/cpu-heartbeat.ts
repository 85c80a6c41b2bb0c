/**
 * One CPU's heartbeat, a process of its own that `watchMachineStalls` pins to that CPU at
 * real-time priority: it wakes every millisecond and prints each gap between wake-ups longer
 * than `REPORTED_GAP_MS` as `<wall-clock ms when it ended> <gap ms>`. At SCHED_FIFO 99 nothing
 * else on the machine runs before it, so a long gap is time the CPU itself did not run.
 *
 * Every `PROBE_EVERY` wake-ups it also times a fixed piece of work (sums over 256 KB, about the
 * size of a core's L2) and prints `probe <wall-clock ms> <µs>`: the same instructions taking longer
 * is the CPU itself running slower (on a virtual machine, a busy neighbour on its physical core or
 * its caches), which stops nothing and so shows in no gap.
 */
export {};

const REPORTED_GAP_MS = 4;
const PROBE_EVERY = 100;
/** Probes before this many are the JIT's, not the CPU's. */
const WARM_PROBES = 20;

const probeValues = Float64Array.from({ length: 32_768 }, (_, i) => i % 7);

function probeMicros(): number {
  const started = performance.now();
  let sum = 0;
  for (let pass = 1; pass <= 2; pass++) {
    for (const value of probeValues) sum += value * pass;
  }
  const micros = (performance.now() - started) * 1000;
  // Uses the sum, so the loop cannot be left out.
  return sum < 0 ? Number.NaN : micros;
}

let beats = 0;
let probes = 0;
let last = performance.now();
const beat = () => {
  const now = performance.now();
  const gap = now - last;
  if (gap > REPORTED_GAP_MS) process.stdout.write(`${Date.now().toFixed(0)} ${gap.toFixed(1)}\n`);
  if (++beats % PROBE_EVERY === 0) {
    const micros = probeMicros();
    if (++probes > WARM_PROBES)
      process.stdout.write(`probe ${Date.now().toFixed(0)} ${micros.toFixed(1)}\n`);
  }
  last = performance.now();
  setTimeout(beat, 1);
};
setTimeout(beat, 1);
