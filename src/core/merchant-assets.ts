import { PayCryptError } from '../internal/errors.ts';
import type { Db } from '../storage/database.ts';
import type { ConfiguredAsset, DepositAsset, DepositChains } from './deposits/deposit-chains.ts';

/**
 * Which of the configured assets a merchant accepts: every one (the default,
 * and what merchants created before this setting keep), or a list of its
 * choosing, possibly empty.
 *
 * @dev The list is stored by chain name and symbol, so every network code of a
 * chain (`BEP20`, `56`…) names the same choice. Entries whose asset is no
 * longer configured stay stored but are not listed: a chain configured again
 * comes back as the merchant had it. A chain added to the configuration later
 * is accepted by merchants that accept every asset, and by no merchant with a
 * list until it is enabled for them.
 */
export type MerchantAssets = {
  accepts: 'all' | 'selected';
  /** What the merchant accepts, in configuration order. */
  accepted: ConfiguredAsset[];
  /** The configured assets it does not accept, in configuration order. */
  notAccepted: ConfiguredAsset[];
};

/** An asset as an operator names it: one of its chain's network codes and its symbol. */
export type AssetRef = { network: string; symbol: string };

type AssetKey = { chain: string; symbol: string };

/** The assets a merchant accepts, resolved against the configured chains (for checkout pages and the APIs). */
export async function acceptedAssets(db: Db, chains: DepositChains, merchantId: number): Promise<ConfiguredAsset[]> {
  return (await merchantAssets(db, chains, merchantId)).accepted;
}

/** What a merchant accepts and what it does not, among the configured assets. */
export async function merchantAssets(db: Db, chains: DepositChains, merchantId: number): Promise<MerchantAssets> {
  const row = await db.selectFrom('merchant_assets').select('accepted').where('merchant_id', '=', merchantId).executeTakeFirst();
  return resolve(chains, row?.accepted ?? 'all');
}

/** Makes the merchant accept these assets too; one that accepts every asset already does. */
export async function enableAssets(db: Db, chains: DepositChains, merchantId: number, refs: readonly AssetRef[]): Promise<MerchantAssets> {
  const keys = keysOf(chains, refs);
  return change(db, chains, merchantId, (current) => (current === 'all' ? 'all' : [...current, ...keys.filter((key) => !includes(current, key))]));
}

/**
 * Stops the merchant accepting these assets. A merchant that accepted every
 * asset then accepts every other asset configured now.
 */
export async function disableAssets(db: Db, chains: DepositChains, merchantId: number, refs: readonly AssetRef[]): Promise<MerchantAssets> {
  const keys = keysOf(chains, refs);
  return change(db, chains, merchantId, (current) => {
    const list = current === 'all' ? chains.assets().map(({ chain, symbol }) => ({ chain, symbol })) : current;
    return list.filter((entry) => !includes(keys, entry));
  });
}

/** Sets exactly what the merchant accepts: `'all'` (the default again) or these assets only. */
export async function setAcceptedAssets(db: Db, chains: DepositChains, merchantId: number, refs: readonly AssetRef[] | 'all'): Promise<MerchantAssets> {
  const next = refs === 'all' ? 'all' : keysOf(chains, refs);
  return change(db, chains, merchantId, () => next);
}

/**
 * The network for a payment in `symbol` that names none: the first configured
 * chain on which the merchant accepts the asset, else the first that carries
 * it (the payment is then refused by `requireAcceptedAsset`, with what the
 * merchant accepts). Undefined when no configured chain carries it.
 */
export async function defaultNetworkFor(db: Db, chains: DepositChains, merchantId: number, symbol: string): Promise<string | undefined> {
  const configured = chains.defaultNetworkFor(symbol);
  // Note: no query for an asset no configured chain carries: such payments are not the merchant's asset choice to make.
  if (configured === undefined) return undefined;
  const { accepted } = await merchantAssets(db, chains, merchantId);
  return accepted.find((asset) => asset.symbol === symbol)?.network ?? configured;
}

/** Refuses a payment in an asset of a configured chain that the merchant does not accept. */
export async function requireAcceptedAsset(db: Db, chains: DepositChains, merchantId: number, asset: DepositAsset): Promise<void> {
  const { accepted } = await merchantAssets(db, chains, merchantId);
  if (accepted.some((candidate) => candidate.chain === asset.chain && candidate.symbol === asset.symbol)) return;
  const accepts = accepted.length > 0 ? accepted.map((candidate) => `${candidate.symbol} on ${candidate.network}`).join(', ') : 'no asset on a configured chain';
  throw new PayCryptError('invalid_request', `${asset.symbol} on ${asset.network} is not enabled for this merchant; it accepts ${accepts}`, {
    details: { field: 'crypto_currency' },
  });
}

/** `NETWORK:SYMBOL` as operators write it. */
export function formatAssetRef(asset: AssetRef): string {
  return `${asset.network}:${asset.symbol}`;
}

/**
 * Reads a merchant's choice, applies `next` and stores the result, in one
 * transaction that holds the merchant's row: concurrent changes to one
 * merchant apply one after the other, none lost.
 */
async function change(
  db: Db,
  chains: DepositChains,
  merchantId: number,
  next: (current: AssetKey[] | 'all') => AssetKey[] | 'all',
): Promise<MerchantAssets> {
  return db.transaction().execute(async (trx) => {
    // Note: FOR NO KEY UPDATE, not FOR UPDATE, so that payments of the merchant (whose foreign key takes FOR KEY SHARE) are not held up meanwhile.
    const merchant = await trx.selectFrom('merchants').select('id').where('id', '=', merchantId).forNoKeyUpdate().executeTakeFirst();
    if (!merchant) throw new PayCryptError('resource_not_found', `Merchant not found: ${merchantId}`);
    const row = await trx.selectFrom('merchant_assets').select('accepted').where('merchant_id', '=', merchantId).executeTakeFirst();
    const accepted = next(row?.accepted ?? 'all');
    if (accepted === 'all') await trx.deleteFrom('merchant_assets').where('merchant_id', '=', merchantId).execute();
    else {
      const values = { merchant_id: merchantId, accepted: JSON.stringify(accepted), updated_at: new Date() };
      await trx
        .insertInto('merchant_assets')
        .values(values)
        .onConflict((conflict) => conflict.column('merchant_id').doUpdateSet({ accepted: values.accepted, updated_at: values.updated_at }))
        .execute();
    }
    return resolve(chains, accepted);
  });
}

function resolve(chains: DepositChains, accepted: AssetKey[] | 'all'): MerchantAssets {
  const configured = chains.assets();
  if (accepted === 'all') return { accepts: 'all', accepted: [...configured], notAccepted: [] };
  return {
    accepts: 'selected',
    accepted: configured.filter((asset) => includes(accepted, asset)),
    notAccepted: configured.filter((asset) => !includes(accepted, asset)),
  };
}

/** The stored keys of the assets named, de-duplicated; an asset no configured chain carries is refused, with what is configured. */
function keysOf(chains: DepositChains, refs: readonly AssetRef[]): AssetKey[] {
  const keys: AssetKey[] = [];
  for (const ref of refs) {
    const found = chains.resolve(ref.network, ref.symbol);
    if (found === undefined || found === 'unknown_asset') {
      const why = found === undefined ? `no configured chain serves network ${ref.network}` : `the chain of ${ref.network} does not carry ${ref.symbol}`;
      const configured = chains.assets().map(formatAssetRef);
      throw new PayCryptError('invalid_request', `Unknown asset ${formatAssetRef(ref)}: ${why}; configured: ${configured.length > 0 ? configured.join(', ') : 'none (no chains are configured)'}`, {
        details: { field: 'assets', asset: formatAssetRef(ref) },
      });
    }
    const key = { chain: found.chain, symbol: found.symbol };
    if (!includes(keys, key)) keys.push(key);
  }
  return keys;
}

function includes(list: readonly AssetKey[], key: AssetKey): boolean {
  return list.some((entry) => entry.chain === key.chain && entry.symbol === key.symbol);
}
