import { z } from 'zod';
import { merchantAssets } from '../../../core/merchant-assets.ts';
import type { ApiContext } from '../../context.ts';
import { defineRoute } from '../../route.ts';
import { errorResponseSchema } from '../render.ts';
import { assetSchema, renderAsset } from './views.ts';

const assetsResponseSchema = z.object({
  accepts: z.enum(['all', 'selected']).meta({ description: '`all`: every asset the gateway is configured for, now and as chains are added; `selected`: only the listed ones' }),
  data: z.array(assetSchema),
});

/** The assets of configured chains the authenticated merchant accepts (read-only; operators change them). */
export function listAssetsRoute(context: ApiContext) {
  return defineRoute({
    method: 'GET',
    url: '/assets',
    summary: 'List the assets you accept on the configured chains',
    description:
      'The coins and tokens this gateway watches on-chain that payments of yours may use, as `crypto_currency` and `crypto_network`. ' +
      'A payment in another asset of a configured chain answers 400. The gateway\'s operator chooses them (`paycrypt merchants assets`).',
    tag: 'Assets',
    security: 'bearer',
    responses: {
      200: { description: 'The accepted assets', schema: assetsResponseSchema },
      401: { description: 'Invalid or missing API key', schema: errorResponseSchema },
      429: { description: 'Too many requests', schema: errorResponseSchema },
    },
    async handler({ request }) {
      const assets = await merchantAssets(context.storage.db, context.chains, request.auth!.merchantId);
      return { accepts: assets.accepts, data: assets.accepted.map(renderAsset) };
    },
  });
}
