import { hexToBytes, keccak256, toEventSelector, type Hex } from 'viem';

/** topics[0] of an ERC-20 `Transfer(address indexed from, address indexed to, uint256 value)` log. */
export const transferTopic = toEventSelector('Transfer(address,address,uint256)');

/** A log as `eth_getLogs` returns it: hex strings, not yet formatted. */
export type RpcLog = {
  address: string;
  topics: string[];
  data: string;
  blockNumber: string | null;
  blockHash: string | null;
  transactionHash: string | null;
  logIndex: string | null;
};

export type TokenTransferLog = { contract: string; txHash: string; logIndex: number; from: string; to: string; amount: bigint };

/**
 * Reads an ERC-20 Transfer straight from the log's topics and data: the
 * sender is topics[1], the recipient topics[2] (each an address in the low 20
 * of 32 bytes), the amount the one 32-byte word of data. Undefined for a log
 * of another shape: another event, a Transfer with other indexed arguments
 * (ERC-721 indexes the token id as topics[3]), or data that is not one word.
 *
 * @dev Takes only what a deposit needs, instead of an ABI decode and viem's
 * formatting of every field of every log: a block can hold thousands of them.
 * Addresses come out lower-case. The caller checks the log's block.
 */
export function tokenTransferFromLog(log: RpcLog): TokenTransferLog | undefined {
  const { topics, data } = log;
  if (topics.length !== 3 || topics[0]!.toLowerCase() !== transferTopic || topics[1]!.length !== 66 || topics[2]!.length !== 66 || data.length !== 66) return undefined;
  if (log.transactionHash === null || log.logIndex === null) return undefined;
  return {
    contract: log.address.toLowerCase(),
    txHash: log.transactionHash.toLowerCase(),
    logIndex: Number(log.logIndex),
    from: `0x${topics[1]!.slice(26).toLowerCase()}`,
    to: `0x${topics[2]!.slice(26).toLowerCase()}`,
    amount: BigInt(data),
  };
}

/**
 * Whether a block's `logsBloom` may hold a log of contract `address`. False
 * is a proof that the block has no log of it: a bloom filter has no false
 * negatives. True may be a false positive.
 *
 * @dev The Yellow Paper's M3:2048: the low 11 bits of each of the first three
 * byte pairs of the address's keccak-256 name one of the bloom's 2,048 bits,
 * counted from its last byte.
 */
export function bloomMayContain(bloom: Hex, address: Hex): boolean {
  const bits = hexToBytes(bloom);
  if (bits.length !== 256) return true;
  const hash = hexToBytes(keccak256(address));
  for (let pair = 0; pair < 6; pair += 2) {
    const bit = ((hash[pair]! << 8) | hash[pair + 1]!) & 2047;
    if ((bits[255 - (bit >> 3)]! & (1 << (bit & 7))) === 0) return false;
  }
  return true;
}
