import { type Clock, systemClock } from './clock.ts';

/** Structured JSON logs, one object per line, with secrets redacted. */
export interface Logger {
  debug(event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const levelRank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

// Field names whose values are never logged, whatever they hold.
const secretFieldName =
  /(authorization|apikey|api_key|secret|password|passwd|token|cookie|private_key|master_key|plaintext)/i;
// Values that look like credentials or personal data, wherever they appear.
const secretValuePatterns: readonly RegExp[] = [
  /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+/g, // JWTs
  /\b(sy|sk|sb_secret|sb_publishable)_[A-Za-z0-9_-]{8,}/g, // API keys
  /\bsk-[A-Za-z0-9_-]{8,}/g,
  /\bBearer\s+[^\s"']+/gi,
  /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g, // e-mail addresses
];

/** Returns a copy of `value` safe to log: secret fields and secret-looking strings replaced. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6) return '[truncated]';
  if (typeof value === 'string') {
    let result = value;
    for (const pattern of secretValuePatterns) result = result.replace(pattern, '[redacted]');
    return result;
  }
  if (Array.isArray(value)) return value.map((item) => redact(item, depth + 1));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(value)) {
      out[key] = secretFieldName.test(key) ? '[redacted]' : redact(field, depth + 1);
    }
    return out;
  }
  return value;
}

export function createJsonLogger(options: {
  level?: LogLevel;
  write?: (line: string) => void;
  base?: Record<string, unknown>;
  /** Stamps each line's `at` (the dependencies' clock, so a test that moves time sees it in the logs). */
  clock?: Clock;
} = {}): Logger {
  const threshold = levelRank[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => console.log(line));
  const base = options.base ?? {};
  const clock = options.clock ?? systemClock;
  const emit = (level: LogLevel, event: string, fields: Record<string, unknown> = {}) => {
    if (levelRank[level] < threshold) return;
    const record = redact({ ...base, ...fields }) as Record<string, unknown>;
    write(JSON.stringify({ level, event, at: clock.now().toISOString(), ...record }));
  };
  return {
    debug: (event, fields) => emit('debug', event, fields),
    info: (event, fields) => emit('info', event, fields),
    warn: (event, fields) => emit('warn', event, fields),
    error: (event, fields) => emit('error', event, fields),
  };
}
