import { secp256k1 } from '@noble/curves/secp256k1.js';
import { HDKey } from '@scure/bip32';
import { mnemonicToSeedSync, validateMnemonic } from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { bytesToHex, publicKeyToAddress } from 'viem/utils';

/**
 * Deposit addresses by BIP-32/BIP-44: `m/44'/60'/0'/0/<index>`, the path
 * standard wallets (MetaMask, Ledger, Trezor) use, so funds at any derived
 * address can be recovered from the seed with the stored index.
 *
 * @dev A watch-only gateway is given the account-level extended public key
 * (`m/44'/60'/0'`) and derives `0/<index>` from it; it can see payments but
 * cannot spend them.
 */
export type AddressDeriver = {
  /** Whether private keys are available (a seed was given, not an xpub). */
  canSign: boolean;
  addressAt(index: number): `0x${string}`;
  privateKeyAt(index: number): `0x${string}`;
};

export const evmAccountPath = "m/44'/60'/0'";

const hardened = 0x80000000;
const testnetVersions = { private: 0x04358394, public: 0x043587cf };

export function createAddressDeriver(source: { xpub: string } | { mnemonic: string }): AddressDeriver {
  let account: HDKey;
  if ('xpub' in source) {
    try {
      // Note: a tpub differs from an xpub only in its version bytes; both carry the same key.
      account = HDKey.fromExtendedKey(source.xpub, source.xpub.startsWith('tpub') ? testnetVersions : undefined);
    } catch (error) {
      throw new Error(`the xpub is not a valid extended public key (${(error as Error).message})`);
    }
    // Note: an xpub of another level (the master key, or m/44'/60'/0'/0) derives
    // addresses no standard wallet shows for this seed; refuse it rather than guess.
    if (account.depth !== 3 || account.index < hardened) {
      throw new Error(`the xpub must be the account-level key (${evmAccountPath}, depth 3); this one is at depth ${account.depth}`);
    }
  } else {
    if (!validateMnemonic(source.mnemonic.trim(), wordlist)) throw new Error('the wallet mnemonic is not a valid BIP-39 English phrase');
    account = HDKey.fromMasterSeed(mnemonicToSeedSync(source.mnemonic.trim())).derive(evmAccountPath);
  }
  const external = account.deriveChild(0);
  const keyAt = (index: number) => {
    if (!Number.isSafeInteger(index) || index < 0 || index >= 2 ** 31) throw new Error(`derivation index out of range: ${index}`);
    return external.deriveChild(index);
  };
  return {
    canSign: account.privateKey !== null,
    addressAt(index) {
      // Note: BIP-32 keeps public keys compressed; an Ethereum address hashes the uncompressed form.
      const uncompressed = secp256k1.Point.fromBytes(keyAt(index).publicKey!).toBytes(false);
      return publicKeyToAddress(bytesToHex(uncompressed)).toLowerCase() as `0x${string}`;
    },
    privateKeyAt(index) {
      const key = keyAt(index);
      if (!key.privateKey) throw new Error('watch-only: no private keys (an xpub was configured, not a seed)');
      return bytesToHex(key.privateKey);
    },
  };
}
