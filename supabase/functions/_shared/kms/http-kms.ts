import { HttpError } from '../errors.ts';
import { fromBase64, kekIdPattern, type Kms, roundTripSelfTest, toBase64, type WrappedDataKey } from './kms.ts';

/**
 * Client for an external KMS that wraps data keys over HTTP (a Vault
 * transit-style service, or a small proxy in front of a cloud KMS).
 *
 * Wire format (JSON, bytes as standard base64):
 *
 *     POST {KMS_URL}/v1/keys/{key id}/encrypt    Authorization: Bearer {KMS_TOKEN}
 *       {"plaintext": "<data key>"}        -> 200 {"key_id": "<key id>", "ciphertext": "<wrapped key>"}
 *     POST {KMS_URL}/v1/keys/{key id}/decrypt    Authorization: Bearer {KMS_TOKEN}
 *       {"ciphertext": "<wrapped key>"}    -> 200 {"plaintext": "<data key>"}
 *
 * The key id is URL-encoded in the path. Any other status, a malformed
 * answer, or no answer within the timeout is 503 kms_unavailable; the token
 * and key bytes never appear in an error.
 */
export interface HttpKmsOptions {
  url: string;
  token: string;
  /** The key new data keys are wrapped under (KMS_KEY_ID). */
  keyId: string;
  /** Each call's limit (KMS_TIMEOUT_MS). */
  timeoutMs: number;
  fetch: typeof fetch;
}

export class HttpKms implements Kms {
  readonly kind = 'http' as const;
  readonly #options: HttpKmsOptions;
  readonly #baseUrl: string;

  constructor(options: HttpKmsOptions) {
    if (!/^https?:\/\//.test(options.url)) throw new Error('HttpKms url must be http(s)');
    if (!kekIdPattern.test(options.keyId)) throw new Error('HttpKms keyId is not a valid key id');
    this.#options = options;
    this.#baseUrl = options.url.replace(/\/+$/, '');
  }

  currentKeyId(): string {
    return this.#options.keyId;
  }

  async #call(kekId: string, operation: 'encrypt' | 'decrypt', body: Record<string, string>): Promise<unknown> {
    const url = `${this.#baseUrl}/v1/keys/${encodeURIComponent(kekId)}/${operation}`;
    let response: Response;
    try {
      response = await this.#options.fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.#options.token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.#options.timeoutMs),
      });
    } catch (error) {
      const timedOut = error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
      throw new HttpError(
        'kms_unavailable',
        timedOut
          ? `the KMS did not answer ${operation} within ${this.#options.timeoutMs} ms`
          : `the KMS could not be reached for ${operation}`,
      );
    }
    if (!response.ok) {
      await response.body?.cancel();
      const why = response.status === 401 || response.status === 403
        ? 'refused the token (KMS_TOKEN)'
        : response.status === 404
        ? `does not know key "${kekId}"`
        : `answered ${response.status}`;
      throw new HttpError('kms_unavailable', `the KMS ${why} on ${operation}`);
    }
    try {
      return await response.json();
    } catch {
      throw new HttpError('kms_unavailable', `the KMS answered ${operation} with a body that is not JSON`);
    }
  }

  async wrapDataKey(dataKey: Uint8Array, kekId: string = this.#options.keyId): Promise<WrappedDataKey> {
    const answer = await this.#call(kekId, 'encrypt', { plaintext: toBase64(dataKey) }) as Record<string, unknown>;
    const wrappedKey = typeof answer?.ciphertext === 'string' ? fromBase64(answer.ciphertext) : undefined;
    const answeredKeyId = answer?.key_id ?? kekId;
    if (
      !wrappedKey || wrappedKey.length === 0 || typeof answeredKeyId !== 'string' || !kekIdPattern.test(answeredKeyId)
    ) {
      throw new HttpError('kms_unavailable', 'the KMS answered encrypt without a valid key_id and ciphertext');
    }
    return { kekId: answeredKeyId, wrappedKey };
  }

  async unwrapDataKey(wrapped: WrappedDataKey): Promise<Uint8Array> {
    const answer = await this.#call(wrapped.kekId, 'decrypt', {
      ciphertext: toBase64(wrapped.wrappedKey),
    }) as Record<string, unknown>;
    const plaintext = typeof answer?.plaintext === 'string' ? fromBase64(answer.plaintext) : undefined;
    if (!plaintext) throw new HttpError('kms_unavailable', 'the KMS answered decrypt without a valid plaintext');
    return plaintext;
  }

  selfTest(): Promise<{ kekId: string }> {
    return roundTripSelfTest(this);
  }
}
