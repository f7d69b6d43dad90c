/**
 * The part of autocannon's programmatic API the benchmarks use (the package
 * ships no types of its own).
 */
declare module 'autocannon' {
  type EventEmitter = import('node:events').EventEmitter;

  export type Request = {
    method?: string;
    path?: string;
    headers?: Record<string, string>;
    body?: string;
  };

  export type Options = {
    url: string;
    connections?: number;
    /** Seconds. */
    duration?: number;
    method?: 'GET' | 'POST';
    headers?: Record<string, string>;
    body?: string;
    /** Seconds before a request counts as timed out. */
    timeout?: number;
    /** Changes each request before it is sent, e.g. to give it its own header. */
    setupRequest?: (request: Request, context: Record<string, unknown>) => Request;
  };

  export type Result = {
    /** Seconds. */
    duration: number;
    errors: number;
    timeouts: number;
    non2xx: number;
    '2xx': number;
    statusCodeStats: Record<string, { count: number }>;
  };

  /** Emits `response` (client, statusCode, bytes, responseTimeMs) for every response, and resolves when the run ends. */
  export type Instance = EventEmitter & PromiseLike<Result> & { stop(): void };

  export default function autocannon(options: Options): Instance;
}
