/**
 * A coarse wall clock for the gate's hot path: reading `Date.now()` costs
 * several gate calls, so one shared timer refreshes `coarseClock.now` every
 * {@link CLOCK_TICK_MS} while at least one client holds the clock. The lease
 * and the safe-mode bucket only need this resolution. The timer is unref'd
 * and stops when the last holder releases it.
 */
export const CLOCK_TICK_MS = 5;

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
