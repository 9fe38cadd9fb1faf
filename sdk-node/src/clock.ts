/**
 * A coarse wall clock for the gate's hot path: reading `Date.now()` costs
 * several gate calls, so one shared timer refreshes `coarseClock.now` every
 * {@link CLOCK_TICK_MS} while at least one client holds the clock. The lease
 * needs far less; the `fixed_rps` bucket refills by elapsed time, so 20 ms
 * steps keep its rate exact on average. A 5 ms tick measured about 7 ms of CPU
 * per second of an idle process; 20 ms is a quarter of that. The timer is
 * unref'd and stops when the last holder releases it.
 */
export const CLOCK_TICK_MS = 20;

export const coarseClock = { now: Date.now() };

let holders = 0;
let timer: ReturnType<typeof setInterval> | null = null;

function tick(): void {
  coarseClock.now = Date.now();
}

/** Starts (or shares) the clock; call the returned function once to release it. */
export function holdClock(): () => void {
  holders++;
  tick();
  if (timer === null) {
    timer = setInterval(tick, CLOCK_TICK_MS);
    timer.unref();
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    holders--;
    if (holders === 0 && timer !== null) {
      clearInterval(timer);
      timer = null;
    }
  };
}

/** Refreshes the clock now (after a sync, so the lease starts from a fresh reading). */
export const refreshClock = tick;

/** Whether the shared timer is running (tests check nothing leaks). */
export function clockRunning(): boolean {
  return timer !== null;
}
