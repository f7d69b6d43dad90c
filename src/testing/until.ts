/**
 * Polls `probe` until `done` holds and returns that value; fails with the
 * last value seen after `timeoutMs`. For waiting on what a gateway does in
 * the background (a watcher, a dispatcher) without sleeping blindly.
 */
export async function until<T>(label: string, probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 20_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}; last seen: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
