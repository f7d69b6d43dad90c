// Compiles the test ERC-20 with the `solc` npm package (soljson, no native binary).
// Shared by `scripts/build-contracts.mjs`, which writes the committed artifact, and by
// the test that checks the committed artifact is what the source compiles to today.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import solc from 'solc';

export const testTokenSourcePath = fileURLToPath(new URL('../contracts/TestToken.sol', import.meta.url));
export const testTokenArtifactPath = fileURLToPath(new URL('../contracts/TestToken.json', import.meta.url));

// Note: every setting is pinned so the same source and solc version always give the same
// bytecode. evmVersion is fixed rather than solc's default, which moves between releases.
export const compilerSettings = Object.freeze({
  optimizer: { enabled: true, runs: 200 },
  evmVersion: 'cancun',
  outputSelection: { 'TestToken.sol': { TestToken: ['abi', 'evm.bytecode.object'] } },
});

/**
 * @returns {{ contractName: string, abi: unknown[], bytecode: `0x${string}`, solcVersion: string, sourceSha256: string }}
 */
export function compileTestToken() {
  const source = readFileSync(testTokenSourcePath, 'utf8');
  const input = {
    language: 'Solidity',
    sources: { 'TestToken.sol': { content: source } },
    settings: compilerSettings,
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const problems = (output.errors ?? []).filter((e) => e.severity === 'error' || e.type === 'Warning');
  if (problems.length > 0) {
    // Note: warnings fail the build too; the contract is small enough to keep clean.
    throw new Error(`solc ${solc.version()} rejected TestToken.sol:\n${problems.map((e) => e.formattedMessage).join('\n')}`);
  }
  const contract = output.contracts['TestToken.sol'].TestToken;
  return {
    contractName: 'TestToken',
    abi: contract.abi,
    bytecode: `0x${contract.evm.bytecode.object}`,
    solcVersion: solc.version(),
    sourceSha256: createHash('sha256').update(source).digest('hex'),
  };
}
