import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HDKey } from '@scure/bip32';
import { mnemonicToSeedSync } from '@scure/bip39';
import { mnemonicToAccount, privateKeyToAccount } from 'viem/accounts';
import { ConfigError, loadConfig } from '../internal/config.ts';
import { createAddressDeriver, evmAccountPath } from './evm/address-derivation.ts';

const mnemonic = 'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about';
const otherMnemonic = 'test test test test test test test test test test test junk';
const usdt = '0xdac17f958d2ee523a2206206994597c13d831ec7';

/** A complete, valid entry; tests change one field at a time. */
function chain(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'ethereum',
    family: 'evm',
    chain_id: 1,
    networks: ['ERC20'],
    rpc_url: 'https://eth.example.com',
    native: { symbol: 'ETH', decimals: 18 },
    tokens: [{ symbol: 'USDT', contract: usdt, decimals: 6 }],
    addresses: { mnemonic_env: 'ETH_WALLET_MNEMONIC' },
    ...overrides,
  };
}

function accountXpub(phrase: string, versions?: { private: number; public: number }): string {
  return HDKey.fromMasterSeed(mnemonicToSeedSync(phrase), versions).derive(evmAccountPath).publicExtendedKey;
}

/** The error `fn` throws; fails the test when it throws none. */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  assert.fail('expected an error');
}

function configWith(chains: unknown, env: Record<string, string> = {}) {
  return loadConfig({ PAYCRYPT_CHAINS: JSON.stringify(chains), ETH_WALLET_MNEMONIC: mnemonic, ...env });
}

describe('chain configuration: a valid one', () => {
  it('reads PAYCRYPT_CHAINS with the documented defaults and the wallet from the named variable', () => {
    const config = configWith([chain(), chain({ name: 'polygon', chain_id: 137, networks: ['POLYGON', '137'], tokens: [], addresses: { xpub: accountXpub(otherMnemonic) } })]);
    assert.equal(config.chains.length, 2);
    const [ethereum, polygon] = config.chains;
    assert.equal(ethereum!.name, 'ethereum');
    assert.equal(ethereum!.confirmations, 12);
    assert.equal(ethereum!.reorg_window, 64);
    assert.equal(ethereum!.poll_interval_ms, 1000);
    assert.equal(ethereum!.payment_window_minutes, 60);
    assert.equal(ethereum!.start_block, 'latest');
    assert.deepEqual(ethereum!.tokens, [{ symbol: 'USDT', contract: usdt, decimals: 6 }]);
    assert.deepEqual(polygon!.networks, ['POLYGON', '137']);
    assert.deepEqual(polygon!.tokens, []);
    assert.deepEqual(config.chainWallets, { ethereum: { mnemonic }, polygon: { xpub: accountXpub(otherMnemonic) } });
  });

  it('reads the same from the file PAYCRYPT_CHAINS_FILE names', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paycrypt-chains-'));
    try {
      const file = path.join(dir, 'chains.json');
      fs.writeFileSync(file, JSON.stringify([chain({ confirmations: 3, reorg_window: 3, start_block: 19_000_000 })]));
      const config = loadConfig({ PAYCRYPT_CHAINS_FILE: file, ETH_WALLET_MNEMONIC: mnemonic });
      assert.equal(config.chains.length, 1);
      assert.equal(config.chains[0]!.confirmations, 3);
      assert.equal(config.chains[0]!.reorg_window, 3);
      assert.equal(config.chains[0]!.start_block, 19_000_000);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('has no chains when neither variable is set', () => {
    assert.deepEqual(loadConfig({}).chains, []);
  });
});

describe('chain configuration: each mistake is named', () => {
  const cases: Array<[what: string, chains: unknown[], field: RegExp, message: RegExp]> = [
    ['a token contract that is not an address', [chain({ tokens: [{ symbol: 'USDT', contract: '0x1234', decimals: 6 }] })], /\[0\.tokens\.0\.contract\] \(chain ethereum\)/, /0x-prefixed 20-byte address/],
    ['a chain name used twice', [chain(), chain({ networks: ['OTHER'] })], /\[1\.name\]/, /duplicate chain name ethereum/],
    ['a network claimed by two chains', [chain(), chain({ name: 'ethereum-2', networks: ['ETH2', 'ERC20'] })], /\[1\.networks\] \(chain ethereum-2\)/, /network ERC20 is claimed by two chains/],
    ['a reorg window shorter than the confirmations', [chain({ confirmations: 20, reorg_window: 10 })], /\[0\.reorg_window\]/, /reorg_window must be at least confirmations/],
    ['an unknown key', [chain({ confirmation: 3 })], /\[0\]/, /Unrecognized key: "confirmation"/],
    ['a malformed xpub', [chain({ addresses: { xpub: 'xpub123' } })], /\[0\.addresses/, /extended public key/],
    ['an http URL that is not one', [chain({ rpc_url: 'localhost:8545' })], /\[0\.rpc_url\]/, /http\(s\) URL/],
    ['a symbol twice on one chain', [chain({ tokens: [{ symbol: 'ETH', contract: usdt, decimals: 6 }] })], /\[0\.tokens\]/, /a symbol appears twice on one chain/],
  ];
  for (const [what, chains, field, message] of cases) {
    it(`refuses ${what}`, () => {
      const error = thrown(() => configWith(chains));
      assert.ok(error instanceof ConfigError, `a ConfigError, got ${error.name}: ${error.message}`);
      assert.match(error.message, /^Invalid chain configuration:/);
      const lines = error.message.split('\n').slice(1);
      assert.equal(lines.length, 1, `one line for one mistake:\n${error.message}`);
      assert.match(lines[0]!, /^ {2}PAYCRYPT_CHAINS\[/);
      assert.match(lines[0]!, field);
      assert.match(lines[0]!, message);
    });
  }

  it('says which file holds the mistake', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paycrypt-chains-'));
    try {
      const file = path.join(dir, 'chains.json');
      fs.writeFileSync(file, JSON.stringify([chain({ chain_id: 0 })]));
      const error = thrown(() => loadConfig({ PAYCRYPT_CHAINS_FILE: file, ETH_WALLET_MNEMONIC: mnemonic }));
      assert.match(error.message, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\[0\\.chain_id\\]`));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses text that is not JSON', () => {
    const error = thrown(() => loadConfig({ PAYCRYPT_CHAINS: '[{name: ethereum}]' }));
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /Invalid chain configuration in PAYCRYPT_CHAINS: not JSON/);
  });

  it('names PAYCRYPT_CHAINS_FILE and the file when the file does not exist', () => {
    const missing = path.join(os.tmpdir(), `paycrypt-no-such-dir-${process.pid}`, 'chains.json');
    const error = thrown(() => loadConfig({ PAYCRYPT_CHAINS_FILE: missing }));
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /PAYCRYPT_CHAINS_FILE: cannot read/);
    assert.ok(error.message.includes(missing), error.message);
    assert.match(error.message, /ENOENT/);
  });

  it('names the mnemonic variable a chain needs when it is not set', () => {
    const error = thrown(() => loadConfig({ PAYCRYPT_CHAINS: JSON.stringify([chain({ addresses: { mnemonic_env: 'ETH_SEED_PHRASE' } })]) }));
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /^Invalid configuration:\n {2}ETH_SEED_PHRASE: required by chain ethereum/);
  });

  it('refuses a mnemonic that is not a BIP-39 phrase, naming its variable and not echoing it', () => {
    const bad = 'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon';
    const error = thrown(() => configWith([chain()], { ETH_WALLET_MNEMONIC: bad }));
    assert.ok(error instanceof ConfigError, `a ConfigError at start, got ${error.name}`);
    assert.match(error.message, /ETH_WALLET_MNEMONIC \(the wallet of chain ethereum\): the wallet mnemonic is not a valid BIP-39 English phrase/);
    assert.ok(!error.message.includes(bad), 'the phrase is a secret');
  });

  it('refuses an xpub with a bad checksum', () => {
    const xpub = accountXpub(mnemonic);
    const corrupted = xpub.slice(0, -1) + (xpub.endsWith('a') ? 'b' : 'a');
    const error = thrown(() => configWith([chain({ addresses: { xpub: corrupted } })]));
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /chain ethereum, addresses\.xpub: the xpub is not a valid extended public key/);
  });

  it('refuses an xpub of another level than the account (m/44\'/60\'/0\'), which would derive addresses no wallet shows', () => {
    const root = HDKey.fromMasterSeed(mnemonicToSeedSync(mnemonic));
    for (const [key, depth] of [
      [root.publicExtendedKey, 0],
      [root.derive("m/44'/60'/0'/0").publicExtendedKey, 4],
    ] as const) {
      const error = thrown(() => configWith([chain({ addresses: { xpub: key } })]));
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, new RegExp(`addresses\\.xpub: the xpub must be the account-level key .*depth ${depth}`));
    }
  });

  it('stops `paycrypt serve` with a one-line message, not a stack trace, when the mnemonic is invalid', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paycrypt-chains-'));
    const bad = 'zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo';
    const env: NodeJS.ProcessEnv = {};
    for (const [name, value] of Object.entries(process.env)) {
      if (!name.startsWith('PAYCRYPT_') && !name.startsWith('NODE_TEST') && !['DATABASE_URL', 'NODE_ENV', 'PORT', 'HOST'].includes(name)) env[name] = value;
    }
    Object.assign(env, { PAYCRYPT_DATA_DIR: dataDir, PORT: '0', PAYCRYPT_CHAINS: JSON.stringify([chain()]), ETH_WALLET_MNEMONIC: bad });
    try {
      const paycrypt = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'paycrypt');
      const result = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
        const child = spawn(paycrypt, ['serve'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (chunk) => (stderr += chunk));
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        child.on('error', reject);
        child.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code, stderr });
        });
      });
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /^paycrypt: Invalid configuration:\n {2}ETH_WALLET_MNEMONIC \(the wallet of chain ethereum\): the wallet mnemonic is not a valid BIP-39 English phrase\n$/);
      assert.ok(!result.stderr.includes('zoo'), 'the phrase is a secret');
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('deposit address derivation', () => {
  it('derives m/44\'/60\'/0\'/0/<index>: the addresses viem (and standard wallets) derive from the same seed', () => {
    const deriver = createAddressDeriver({ mnemonic });
    // A published vector for this phrase (MetaMask's first account).
    assert.equal(deriver.addressAt(0), '0x9858effd232b4033e47d90003d41ec34ecaeda94');
    for (const index of [0, 1, 2, 7, 1000, 2 ** 31 - 1]) {
      assert.equal(deriver.addressAt(index), mnemonicToAccount(mnemonic, { addressIndex: index }).address.toLowerCase(), `index ${index}`);
    }
  });

  it('derives the same addresses from the account xpub (or tpub) as from the mnemonic', () => {
    const fromSeed = createAddressDeriver({ mnemonic: otherMnemonic });
    const fromXpub = createAddressDeriver({ xpub: accountXpub(otherMnemonic) });
    const fromTpub = createAddressDeriver({ xpub: accountXpub(otherMnemonic, { private: 0x04358394, public: 0x043587cf }) });
    for (const index of [0, 1, 2, 3, 99, 123_456]) {
      assert.equal(fromXpub.addressAt(index), fromSeed.addressAt(index), `xpub, index ${index}`);
      assert.equal(fromTpub.addressAt(index), fromSeed.addressAt(index), `tpub, index ${index}`);
    }
    // The dev accounts anvil funds from this phrase.
    assert.equal(fromXpub.addressAt(0), '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266');
  });

  it('gives from a seed the private key of each address, and none from an xpub', () => {
    const fromSeed = createAddressDeriver({ mnemonic });
    assert.equal(fromSeed.canSign, true);
    for (const index of [0, 5, 42]) {
      assert.equal(privateKeyToAccount(fromSeed.privateKeyAt(index)).address.toLowerCase(), fromSeed.addressAt(index));
    }
    const watchOnly = createAddressDeriver({ xpub: accountXpub(mnemonic) });
    assert.equal(watchOnly.canSign, false);
    assert.equal(watchOnly.addressAt(5), fromSeed.addressAt(5));
    assert.throws(() => watchOnly.privateKeyAt(5), /watch-only: no private keys/);
  });

  it('refuses an index outside BIP-32\'s non-hardened range', () => {
    const deriver = createAddressDeriver({ mnemonic });
    for (const index of [-1, 2 ** 31, 1.5, Number.NaN]) assert.throws(() => deriver.addressAt(index), /derivation index out of range/);
  });

  it('accepts a mnemonic with stray surrounding whitespace, as pasted into an environment file', () => {
    assert.equal(createAddressDeriver({ mnemonic: `  ${mnemonic}\n` }).addressAt(0), createAddressDeriver({ mnemonic }).addressAt(0));
  });
});
