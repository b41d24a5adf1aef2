// @ts-check
/**
 * Runs `task` every `intervalMs`, never two at once, and not while the page is hidden.
 * Timers and visibility are injected so the logic is tested without a browser.
 * @param {{task: () => Promise<unknown>|unknown, intervalMs: number, isHidden: () => boolean,
 *   setTimeout?: (fn: () => void, ms: number) => unknown, clearTimeout?: (h: any) => void,
 *   onState?: (state: 'running'|'paused'|'stopped') => void}} o
 */
export function createPoller(o) {
  const set = o.setTimeout ?? ((fn, ms) => globalThis.setTimeout(fn, ms));
  const clear = o.clearTimeout ?? ((h) => globalThis.clearTimeout(h));
  /** @type {unknown} */
  let timer = null;
  let started = false;
  let inFlight = false;
  /** @type {'running'|'paused'|'stopped'} */
  let state = 'stopped';

  const report = (/** @type {'running'|'paused'|'stopped'} */ s) => {
    if (s !== state) {
      state = s;
      o.onState?.(s);
    }
  };

  const schedule = () => {
    if (timer != null) clear(timer);
    timer = null;
    if (!started) return;
    if (o.isHidden()) {
      report('paused');
      return; // resumed by visibilityChanged()
    }
    report('running');
    timer = set(tick, o.intervalMs);
  };

  async function tick() {
    timer = null;
    if (!started || inFlight) return;
    if (o.isHidden()) {
      report('paused');
      return;
    }
    inFlight = true;
    try {
      await o.task();
    } catch {
      // the task shows its own errors; keep polling
    } finally {
      inFlight = false;
    }
    schedule();
  }

  return {
    /** Starts polling with an immediate run. */
    start() {
      if (started) return;
      started = true;
      void tick().then(() => {
        if (timer == null && started && !inFlight) schedule();
      });
    },
    stop() {
      started = false;
      if (timer != null) clear(timer);
      timer = null;
      report('stopped');
    },
    /** Runs now (e.g. a "refresh" button) and restarts the interval. */
    async refreshNow() {
      if (timer != null) clear(timer);
      timer = null;
      if (inFlight) return;
      inFlight = true;
      try {
        await o.task();
      } catch {
        // shown by the task
      } finally {
        inFlight = false;
      }
      schedule();
    },
    /** Call from a `visibilitychange` listener. */
    visibilityChanged() {
      if (!started) return;
      if (o.isHidden()) {
        if (timer != null) clear(timer);
        timer = null;
        report('paused');
      } else if (timer == null && !inFlight) {
        report('running');
        void tick();
      }
    },
    get state() {
      return state;
    },
    get running() {
      return started;
    },
  };
}
