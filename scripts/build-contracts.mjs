#!/usr/bin/env node
// Writes contracts/TestToken.json from contracts/TestToken.sol. The JSON is committed:
// the gateway deploys the committed bytecode, so running it never needs solc.
// Run after editing the contract: `npm run build:contracts`.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { compileTestToken, testTokenArtifactPath } from './compile-contracts.mjs';

const artifact = compileTestToken();
writeFileSync(testTokenArtifactPath, `${JSON.stringify(artifact, null, 2)}\n`);
console.log(
  `wrote ${path.relative(process.cwd(), testTokenArtifactPath)} (solc ${artifact.solcVersion}, ${(artifact.bytecode.length - 2) / 2} bytes of init code)`,
);
