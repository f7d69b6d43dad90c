// Types for scripts/compile-contracts.mjs, so TypeScript tests can import it.
export type TestTokenArtifact = {
  contractName: string;
  abi: unknown[];
  bytecode: `0x${string}`;
  solcVersion: string;
  sourceSha256: string;
};
export declare const testTokenSourcePath: string;
export declare const testTokenArtifactPath: string;
export declare const compilerSettings: Readonly<Record<string, unknown>>;
export declare function compileTestToken(): TestTokenArtifact;
