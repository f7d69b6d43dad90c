import type { SettledAttempt } from '../core/webhooks/delivery-queue.ts';

export type AttemptRecorder = {
  /** Resolves once `attempt` is written (committed), rejects if it cannot be. */
  record(attempt: SettledAttempt): Promise<void>;
};

export type AttemptRecorderOptions = {
  /** Writes a batch of attempts in one statement, all or none (`recordAttempts`). */
  write: (attempts: readonly SettledAttempt[]) => Promise<void>;
  /** Whether more attempts will end soon: requests are in flight. */
  answersComing: () => boolean;
  /** A batch this big is written at once, without waiting for more. */
  batchTarget: number;
  /** How long a smaller batch waits for more while answers are coming, at most (default 10 ms). */
  gatherMs?: number;
};

/** Attempts written per statement at most. */
const batchLimit = 500;

type PendingRecord = { attempt: SettledAttempt; resolve: () => void; reject: (error: unknown) => void };

/**
 * Records finished attempts in batches (group commit), one statement at a
 * time: an attempt that ends while a batch is being written waits for the
 * next one, which takes every attempt that ended meanwhile. A batch starts at
 * the next turn of the event loop, so the answers that came in the same turn
 * go together rather than the first of them alone. While requests are still in
 * flight, a batch smaller than `batchTarget` also waits for their answers, up
 * to `gatherMs`; once none is in flight it is written at once, so on an idle
 * queue an attempt is recorded as soon as it ends.
 *
 * Why gather: a statement costs as much as some thirty of the attempts it
 * writes (the driver's work and the round trip through the kernel: 180-260 µs
 * of Node CPU for a record of one attempt, 5-8 µs per attempt more). Under
 * load the dispatcher had been writing batches of about 40; in two passes of
 * `npm run bench:webhook-queue` (claims of 256), records of 120 instead of 40
 * cost PostgreSQL 47 and 56 µs per delivery instead of 56 and 58, and Node 34
 * and 42 instead of 55 and 43 (docs/benchmarks.md).
 *
 * @dev `record` resolves only once its attempt is committed: until then the
 * delivery stays leased and pending, so a payment's next event still waits
 * behind it (up to `gatherMs` longer under load) and a crash loses nothing but
 * the log line (the attempt is repeated after the lease). If a batch fails,
 * its attempts are written one by one, so one bad row does not hold back the
 * others.
 */
export function createAttemptRecorder(options: AttemptRecorderOptions): AttemptRecorder {
  const { write, answersComing, batchTarget } = options;
  const gatherMs = options.gatherMs ?? 10;
  const queue: PendingRecord[] = [];
  let writing = false;
  /** Ends the current wait for more answers, while one is under way. */
  let gathered: (() => void) | undefined;

  const batchReady = () => queue.length >= batchTarget || !answersComing();

  function gather(): Promise<void> | undefined {
    if (batchReady()) return undefined;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => gathered?.(), gatherMs);
      gathered = () => {
        clearTimeout(timer);
        gathered = undefined;
        resolve();
      };
    });
  }

  async function writeBatch(batch: PendingRecord[]): Promise<void> {
    try {
      await write(batch.map((item) => item.attempt));
      for (const item of batch) item.resolve();
    } catch (error) {
      if (batch.length === 1) return batch[0]!.reject(error);
      for (const item of batch) await write([item.attempt]).then(item.resolve, item.reject);
    }
  }

  async function drain(): Promise<void> {
    writing = true;
    while (queue.length > 0) {
      await gather();
      await writeBatch(queue.splice(0, batchLimit));
    }
    writing = false;
  }

  // Note: only this starts a writer, and only while none writes; one that writes takes what comes in meanwhile.
  const scheduleDrain = onceNextTurn(() => void drain());

  return {
    record(attempt) {
      return new Promise<void>((resolve, reject) => {
        queue.push({ attempt, resolve, reject });
        if (!writing) scheduleDrain();
        else if (gathered && batchReady()) gathered();
      });
    },
  };
}

/** Returns a function that runs `run` at the start of the next turn of the event loop, once however often it is called in this one. */
export function onceNextTurn(run: () => void): () => void {
  let scheduled = false;
  return () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      run();
    });
  };
}
