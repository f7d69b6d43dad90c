import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { PayCryptError } from '../../internal/errors.ts';

/**
 * Where a webhook may be sent.
 *
 * @dev In production a webhook URL must be HTTPS and its host must resolve
 * only to public addresses: no loopback, private, link-local (which holds the
 * cloud metadata service), CGNAT, multicast or unspecified address. The check
 * runs when the URL is saved and again inside the connection's own DNS lookup
 * at delivery, so a name that later resolves elsewhere (DNS rebinding) is
 * refused at the moment of connecting. Development allows any http(s) URL,
 * so a receiver on 127.0.0.1 can be used for local testing.
 */
export type WebhookUrlPolicy = 'public-https' | 'any';

const blocked = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  blocked.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['64:ff9b::', 96],
] as const) {
  blocked.addSubnet(network, prefix, 'ipv6');
}

export function isBlockedAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return blocked.check(address, 'ipv4');
  if (family === 6) {
    // Note: an IPv4-mapped IPv6 address (::ffff:127.0.0.1) is judged as the IPv4 address it maps.
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
    return mapped ? blocked.check(mapped, 'ipv4') : blocked.check(address, 'ipv6');
  }
  return true;
}

/** Parses and checks a webhook URL's form (not yet its addresses). */
export function parseWebhookUrl(text: string, policy: WebhookUrlPolicy): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new PayCryptError('invalid_request', 'url must be an absolute http(s) URL', { details: { field: 'url' } });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new PayCryptError('invalid_request', 'url must use https (or http in development)', { details: { field: 'url' } });
  }
  if (policy === 'public-https' && url.protocol !== 'https:') {
    throw new PayCryptError('invalid_request', 'url must use https', { details: { field: 'url' } });
  }
  if (url.username || url.password) throw new PayCryptError('invalid_request', 'url must not contain credentials', { details: { field: 'url' } });
  if (text.length > 2048) throw new PayCryptError('invalid_request', 'url must be at most 2048 characters', { details: { field: 'url' } });
  return url;
}

/** Checks a webhook URL fully: its form and, under the strict policy, every address its host resolves to. */
export async function checkWebhookUrl(text: string, policy: WebhookUrlPolicy): Promise<URL> {
  const url = parseWebhookUrl(text, policy);
  if (policy === 'any') return url;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host) ? [host] : await resolveAll(host);
  if (addresses.length === 0) throw new PayCryptError('invalid_request', `url host ${host} does not resolve`, { details: { field: 'url' } });
  const refused = addresses.find(isBlockedAddress);
  if (refused) {
    throw new PayCryptError('invalid_request', `url must point to a public address; ${host} resolves to ${refused}`, { details: { field: 'url' } });
  }
  return url;
}

async function resolveAll(host: string): Promise<string[]> {
  return new Promise((resolve) => {
    dnsLookup(host, { all: true }, (error, addresses) => resolve(error ? [] : addresses.map((entry) => entry.address)));
  });
}

/** A DNS lookup for outgoing connections that refuses blocked addresses under the strict policy. */
export function guardedLookup(policy: WebhookUrlPolicy): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
      if (error) return callback(error, '', 4);
      const allowed = policy === 'any' ? addresses : addresses.filter((entry) => !isBlockedAddress(entry.address));
      if (allowed.length === 0) {
        const refusal = Object.assign(new Error(`refused to connect to ${hostname}: it resolves only to non-public addresses`), { code: 'EBLOCKEDADDRESS' });
        return callback(refusal, '', 4);
      }
      if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, allowed);
      const first = allowed[0]!;
      callback(null, first.address, first.family);
    });
  };
}
