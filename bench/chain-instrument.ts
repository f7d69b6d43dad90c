import pg from 'pg';
import type { PublicClient } from 'viem';
import type { ChainRuntime, ChainStatus } from '../src/chains/registry.ts';

/**
 * Timings of the chain watcher's own work, taken from outside it: every
 * JSON-RPC call it makes (through the client the benchmark hands it) and
 * every SQL statement its connections send (BEGIN and COMMIT included), each
 * as a span on the monotonic clock; and the moments it reports progress.
 *
 * @dev The time of a window with no call in flight is the time spent in
 * JavaScript between awaits. On a block at the head the watcher makes one
 * call at a time; while behind it reads the next blocks ahead, so its calls
 * overlap and their totals add up to more than the window. Recording costs two `performance.now()` calls and one array push per
 * call; nothing is compiled or formatted until the report.
 */

export type Span = { kind: 'rpc' | 'sql'; name: string; start: number; end: number; blockNumber?: bigint };

export type Recorder = {
  spans: Span[];
  /** Spans are kept only while this is true. */
  recording: boolean;
  /** Connections whose statements are not the watcher's (the benchmark's own). */
  ignored: WeakSet<pg.Client>;
};

export function createRecorder(): Recorder {
  return { spans: [], recording: false, ignored: new WeakSet() };
}

const timedRpcMethods = new Set(['getBlock', 'getLogs', 'getTransactionReceipt', 'getBlockNumber', 'getChainId', 'request']);

/**
 * The same client, with each of the watcher's RPC calls recorded as a span:
 * named by the client's action, or by the JSON-RPC method for a raw `request`.
 */
export function instrumentPublicClient(client: PublicClient, recorder: Recorder): PublicClient {
  return new Proxy(client, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof property !== 'string' || !timedRpcMethods.has(property) || typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        const start = performance.now();
        const result: unknown = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        if (recorder.recording) {
          const blockNumber = (args[0] as { blockNumber?: bigint } | undefined)?.blockNumber;
          const name = property === 'request' ? String((args[0] as { method?: unknown } | undefined)?.method) : property;
          recorder.spans.push({ kind: 'rpc', name, start, end: performance.now(), ...(blockNumber !== undefined ? { blockNumber } : {}) });
        }
        return result;
      };
    },
  });
}

/**
 * Records every promise-returning `pg` query in this process (Kysely's
 * PostgreSQL driver uses those) as a span named by its SQL text. Returns the
 * function that restores the original.
 *
 * @dev `createStorage` builds its pool inside the gateway's code, with no
 * hook to pass one in; the prototype is the one place both share. Queries
 * with a callback (the pool's own housekeeping) are passed through.
 */
export function instrumentPg(recorder: Recorder): () => void {
  type Query = (this: pg.Client, ...args: unknown[]) => unknown;
  const prototype = pg.Client.prototype as unknown as { query: Query };
  const original = prototype.query;
  prototype.query = function (this: pg.Client, ...args: unknown[]) {
    if (!recorder.recording || typeof args.at(-1) === 'function' || recorder.ignored.has(this)) return original.apply(this, args);
    const start = performance.now();
    const result = original.apply(this, args);
    if (!(result instanceof Promise)) return result;
    const text = typeof args[0] === 'string' ? args[0] : String((args[0] as { text?: unknown } | undefined)?.text ?? '?');
    const record = () => {
      if (recorder.recording) recorder.spans.push({ kind: 'sql', name: text, start, end: performance.now() });
    };
    result.then(record, record);
    return result;
  };
  return () => {
    prototype.query = original;
  };
}

export type StatusChange = { at: number; status: ChainStatus };

/**
 * Calls `onChange` each time the watcher reports its status. The watcher
 * reports `processed: n` right after block n's transaction commits, and once
 * more at the end of each step (after confirmations are counted), so these
 * moments mark the end of its work on a block and on a step.
 */
export function observeStatus(runtime: ChainRuntime, onChange: (change: StatusChange) => void): void {
  let current = runtime.status;
  Object.defineProperty(runtime, 'status', {
    configurable: true,
    enumerable: true,
    get: () => current,
    set: (status: ChainStatus) => {
      current = status;
      onChange({ at: performance.now(), status });
    },
  });
}

export type SpanGroup = { kind: Span['kind']; name: string; count: number; totalMs: number };

/** Spans that started in [from, to], grouped by kind and name, longest total first. */
export function groupSpans(spans: readonly Span[], from: number, to: number): SpanGroup[] {
  const groups = new Map<string, SpanGroup>();
  for (const span of spans) {
    if (span.start < from || span.start > to) continue;
    const name = span.kind === 'sql' ? shortSql(span.name) : span.name;
    const key = `${span.kind} ${name}`;
    const group = groups.get(key) ?? { kind: span.kind, name, count: 0, totalMs: 0 };
    group.count += 1;
    group.totalMs += Math.min(span.end, to) - span.start;
    groups.set(key, group);
  }
  return [...groups.values()].sort((a, b) => b.totalMs - a.totalMs);
}

/** How much of [from, to] at least one span covers. */
export function coveredMs(spans: readonly Span[], from: number, to: number): number {
  const inWindow = spans.filter((span) => span.start >= from && span.start <= to).sort((a, b) => a.start - b.start);
  let covered = 0;
  let reached = from;
  for (const span of inWindow) {
    const end = Math.min(span.end, to);
    if (end > reached) {
      covered += end - Math.max(span.start, reached);
      reached = end;
    }
  }
  return covered;
}

/** One line of SQL, parameters as Kysely wrote them ($1…), cut to a readable length. */
export function shortSql(text: string, length = 96): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > length ? `${line.slice(0, length - 1)}…` : line;
}
