import type { Config } from '../config.ts';
import { HttpKms } from './http-kms.ts';
import { kekIdPattern, type Kms } from './kms.ts';
import { LocalKms, parseMasterKeys } from './local-kms.ts';
import { createUnavailableKms } from './unavailable-kms.ts';

export interface KmsSetup {
  kms: Kms;
  /** Why the KMS is unavailable (variable names, never values); empty when it works. */
  problems: string[];
}

/**
 * The KMS the configuration asks for: the external one when KMS_URL is set,
 * else the master keys in SWITCHYARD_MASTER_KEYS. Never throws: a missing or
 * invalid configuration gives the unavailable KMS, so the functions still
 * start and everything that needs no key keeps working.
 */
export function createKms(settings: Config['kms'], fetchImpl: typeof fetch): KmsSetup {
  const problems: string[] = [];
  if (settings.url !== undefined) {
    if (!/^https?:\/\/[^\s]+$/.test(settings.url)) problems.push('KMS_URL is not an http(s) URL');
    if (!settings.token) problems.push('KMS_TOKEN is required with KMS_URL');
    if (!settings.keyId) problems.push('KMS_KEY_ID is required with KMS_URL');
    else if (!kekIdPattern.test(settings.keyId)) problems.push('KMS_KEY_ID is not a valid key id');
    if (problems.length > 0) return { kms: createUnavailableKms(problems), problems };
    const kms = new HttpKms({
      url: settings.url,
      token: settings.token as string,
      keyId: settings.keyId as string,
      timeoutMs: settings.timeoutMs,
      fetch: fetchImpl,
    });
    return { kms, problems };
  }
  const parsed = parseMasterKeys(settings.masterKeys);
  if (parsed.problems.length > 0) {
    const named = settings.masterKeys === undefined
      ? ['no KMS is configured: set SWITCHYARD_MASTER_KEYS (or KMS_URL, KMS_TOKEN and KMS_KEY_ID)']
      : parsed.problems;
    return { kms: createUnavailableKms(named), problems: named };
  }
  return { kms: new LocalKms(parsed.keys), problems };
}
