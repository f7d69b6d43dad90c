import { z } from 'zod';
import type { RouteRegistry } from './route.ts';

/** Builds the OpenAPI 3.1 document from the registered routes' own schemas. */
export function buildOpenApiDocument(options: { registry: RouteRegistry; version: string; securitySchemes: Record<string, unknown> }) {
  // Note: zod puts a schema that has an `id` (Payment, Error) in the converted
  // schema's own `$defs` and refers to it as `#/$defs/…`; inside the OpenAPI
  // document that pointer resolves from the document's root, where nothing is.
  // Such schemas move to `components.schemas` and their refs follow them.
  const components: Record<string, unknown> = {};
  const toSchema = (schema: z.ZodType, io: 'input' | 'output') => {
    const converted = z.toJSONSchema(schema, { target: 'draft-2020-12', unrepresentable: 'any', io }) as Record<string, unknown>;
    const { $schema: _ignored, $defs, ...rest } = JSON.parse(JSON.stringify(converted).replaceAll('"#/$defs/', '"#/components/schemas/')) as Record<
      string,
      unknown
    >;
    for (const [id, definition] of Object.entries(($defs ?? {}) as Record<string, unknown>)) {
      if (id in components && JSON.stringify(components[id]) !== JSON.stringify(definition)) {
        throw new Error(`OpenAPI: the schema id ${id} names two different schemas (give its input and output forms their own ids)`);
      }
      components[id] = definition;
    }
    return rest;
  };

  const paths: Record<string, Record<string, unknown>> = {};
  for (const { path, route } of options.registry.routes()) {
    const openApiPath = path.replace(/:([A-Za-z_]+)/g, '{$1}');
    const parameters: unknown[] = [];
    for (const [location, schema] of [
      ['path', route.params],
      ['query', route.query],
    ] as const) {
      if (!schema) continue;
      const json = toSchema(schema, 'input') as { properties?: Record<string, unknown>; required?: string[] };
      for (const [name, property] of Object.entries(json.properties ?? {})) {
        parameters.push({
          name,
          in: location,
          required: location === 'path' || (json.required ?? []).includes(name),
          schema: property,
          ...((property as { description?: string }).description ? { description: (property as { description?: string }).description } : {}),
        });
      }
    }
    for (const [name, description] of Object.entries(route.headers ?? {})) {
      parameters.push({ name, in: 'header', required: false, description, schema: { type: 'string' } });
    }
    paths[openApiPath] ??= {};
    paths[openApiPath][route.method.toLowerCase()] = {
      summary: route.summary,
      ...(route.description ? { description: route.description } : {}),
      tags: [route.tag],
      ...(route.security ? { security: [{ [route.security]: [] }] } : {}),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(route.body ? { requestBody: { required: true, content: { 'application/json': { schema: toSchema(route.body, 'input') } } } } : {}),
      responses: Object.fromEntries(
        Object.entries(route.responses).map(([status, response]) => [
          status,
          {
            description: response.description,
            ...(response.schema ? { content: { 'application/json': { schema: toSchema(response.schema, 'output') } } } : {}),
          },
        ]),
      ),
    };
  }

  return {
    openapi: '3.1.0',
    info: {
      title: 'PayCrypt',
      version: options.version,
      description: 'Self-hosted crypto payment gateway. Amounts are exact: JSON numbers are read from their text and written as exact decimals.',
    },
    components: { schemas: components, securitySchemes: options.securitySchemes },
    paths,
  };
}
