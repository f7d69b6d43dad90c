import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { parseOrThrow } from './validation.ts';

/**
 * A route is one object holding its schemas, its docs and its handler. The
 * same zod schemas validate requests and produce the OpenAPI document.
 */
export type RouteDefinition<
  Params extends z.ZodType = z.ZodType,
  Query extends z.ZodType = z.ZodType,
  Body extends z.ZodType = z.ZodType,
> = {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Fastify path, e.g. `/payments/:payment_id`. */
  url: string;
  summary: string;
  description?: string;
  tag: string;
  /** Name of the security scheme in the OpenAPI document; none for public routes. */
  security?: string;
  /** Extra request headers to document (name → description). */
  headers?: Record<string, string>;
  params?: Params;
  query?: Query;
  body?: Body;
  responses: Record<number, { description: string; schema?: z.ZodType }>;
  handler(context: {
    request: FastifyRequest;
    reply: FastifyReply;
    params: z.output<Params>;
    query: z.output<Query>;
    body: z.output<Body>;
  }): Promise<unknown>;
};

export function defineRoute<Params extends z.ZodType, Query extends z.ZodType, Body extends z.ZodType>(
  route: RouteDefinition<Params, Query, Body>,
): RouteDefinition<Params, Query, Body> {
  return route;
}

/** Registers routes on a (prefixed) Fastify instance and records them, with their full path, for the OpenAPI document. */
export function registerRoutes(app: FastifyInstance, prefix: string, routes: ReadonlyArray<RouteDefinition<any, any, any>>, registry: RouteRegistry): void {
  for (const route of routes) {
    registry.add(prefix, route);
    app.route({
      method: route.method,
      url: route.url,
      config: { security: route.security },
      handler: async (request, reply) => {
        const params = route.params ? parseOrThrow(route.params, request.params, 'path') : undefined;
        const query = route.query ? parseOrThrow(route.query, request.query, 'query') : undefined;
        const body = route.body ? parseOrThrow(route.body, request.body, 'body') : undefined;
        return route.handler({ request, reply, params, query, body });
      },
    });
  }
}

export type RegisteredRoute = { path: string; route: RouteDefinition<any, any, any> };

export type RouteRegistry = {
  add(prefix: string, route: RouteDefinition<any, any, any>): void;
  routes(): readonly RegisteredRoute[];
};

export function createRouteRegistry(): RouteRegistry {
  const routes: RegisteredRoute[] = [];
  return {
    add(prefix, route) {
      routes.push({ path: `${prefix}${route.url}`, route });
    },
    routes: () => routes,
  };
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's security scheme, as in the OpenAPI document; the dialect's hooks authenticate by it. */
    security?: string | undefined;
  }
}
