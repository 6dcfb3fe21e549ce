// Upstream error text may quote keys or tokens; only a redacted, short excerpt is ever shown.
const MAX_MESSAGE_CHARS = 200;

const SECRET_PATTERNS: ReadonlyArray<[RegExp, string]> = [
  [/\bsk-[A-Za-z0-9_\-*]{3,}/g, 'sk-***'],
  [/\bBearer\s+[^\s"',;]+/gi, 'Bearer ***'],
  [/\bAIza[0-9A-Za-z_-]{8,}/g, 'AIza***'],
  [/\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, '***'],
  [/([?&](?:key|api[-_]?key|access_token)=)[^&\s"']+/gi, '$1***'],
  [/\b(x-api-key|api-key|x-goog-api-key|authorization)(["']?\s*[:=]\s*["']?)[^\s"',;]+/gi, '$1$2***'],
  [/\b[0-9a-f]{32,}\b/gi, '***'], // Azure keys are 32 hex characters
];

export function sanitizeUpstreamMessage(text: string, maxChars = MAX_MESSAGE_CHARS): string {
  let clean = text;
  for (const [pattern, replacement] of SECRET_PATTERNS) clean = clean.replace(pattern, replacement);
  clean = clean.replace(/\s+/g, ' ').trim();
  return clean.length > maxChars ? `${clean.slice(0, maxChars - 1)}…` : clean;
}
