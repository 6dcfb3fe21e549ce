// A strict parser for the Prometheus text exposition format 0.0.4, as
// Prometheus itself reads it (https://prometheus.io/docs/instrumenting/exposition_formats/).
// The tests validate the metrics function with it, and the readiness report
// reads figures with it. It throws on the first line that breaks the format.

export type ParsedType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ParsedFamily {
  name: string;
  type: ParsedType;
  help?: string;
  samples: ParsedSample[];
}

export class ExpositionError extends Error {
  constructor(lineNumber: number, message: string) {
    super(`line ${lineNumber}: ${message}`);
    this.name = 'ExpositionError';
  }
}

const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const types = new Set<ParsedType>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(text: string, line: number): number {
  if (text === 'NaN') return Number.NaN;
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) {
    throw new ExpositionError(line, `not a number: ${JSON.stringify(text)}`);
  }
  return Number(text);
}

function unescapeHelp(text: string, line: number): string {
  return text.replace(/\\(.?)/g, (_, next: string) => {
    if (next === '\\') return '\\';
    if (next === 'n') return '\n';
    throw new ExpositionError(line, `bad escape in HELP: \\${next}`);
  });
}

/** Parses `{a="x",b="y"}` from the start of `text`; returns the labels and the rest. */
function parseLabels(text: string, line: number): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let rest = text.slice(1);
  for (;;) {
    if (rest.startsWith('}')) return { labels, rest: rest.slice(1) };
    const name = labelName.exec(rest)?.[0];
    if (!name) throw new ExpositionError(line, `bad label name at ${JSON.stringify(rest.slice(0, 20))}`);
    if (name.startsWith('__')) throw new ExpositionError(line, `reserved label name ${name}`);
    if (name in labels) throw new ExpositionError(line, `duplicate label ${name}`);
    rest = rest.slice(name.length);
    if (!rest.startsWith('="')) throw new ExpositionError(line, `expected =" after label ${name}`);
    rest = rest.slice(2);
    let value = '';
    for (;;) {
      const char = rest[0];
      if (char === undefined) throw new ExpositionError(line, `unterminated value of label ${name}`);
      if (char === '"') break;
      if (char === '\\') {
        const next = rest[1];
        if (next === '\\') value += '\\';
        else if (next === '"') value += '"';
        else if (next === 'n') value += '\n';
        else throw new ExpositionError(line, `bad escape in label ${name}: \\${next ?? ''}`);
        rest = rest.slice(2);
      } else {
        value += char;
        rest = rest.slice(1);
      }
    }
    labels[name] = value;
    rest = rest.slice(1);
    if (rest.startsWith(',')) rest = rest.slice(1);
    else if (!rest.startsWith('}')) throw new ExpositionError(line, `expected , or } after label ${name}`);
  }
}

/** The family a sample belongs to: histogram and summary series carry suffixes. */
function familyOf(sampleName: string, families: Map<string, ParsedFamily>): ParsedFamily | undefined {
  const direct = families.get(sampleName);
  if (direct) return direct;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!sampleName.endsWith(suffix)) continue;
    const family = families.get(sampleName.slice(0, -suffix.length));
    if (family && (family.type === 'histogram' || (family.type === 'summary' && suffix !== '_bucket'))) return family;
  }
  return undefined;
}

/** Parses and validates an exposition; throws ExpositionError on the first violation. */
export function parsePrometheusText(text: string): ParsedFamily[] {
  if (text.length > 0 && !text.endsWith('\n')) {
    throw new ExpositionError(text.split('\n').length, 'the last line must end with a newline');
  }
  const families = new Map<string, ParsedFamily>();
  const finished = new Set<string>();
  const series = new Set<string>();
  let current: ParsedFamily | undefined;
  const lines = text.split('\n').slice(0, -1);

  lines.forEach((raw, index) => {
    const line = index + 1;
    if (raw.trim() === '') return;
    if (raw.startsWith('#')) {
      const match = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(raw);
      if (!match) return; // a plain comment
      const [, keyword, name, rest = ''] = match;
      if (!metricName.test(name) || metricName.exec(name)?.[0] !== name) {
        throw new ExpositionError(line, `bad metric name ${name}`);
      }
      if (finished.has(name)) throw new ExpositionError(line, `${keyword} for ${name} after its samples ended`);
      let family = families.get(name);
      if (family && family.samples.length > 0) {
        throw new ExpositionError(line, `${keyword} for ${name} after its samples`);
      }
      if (!family) {
        family = { name, type: 'untyped', samples: [] };
        families.set(name, family);
      }
      if (current && current !== family) finished.add(current.name);
      current = family;
      if (keyword === 'HELP') {
        if (family.help !== undefined) throw new ExpositionError(line, `second HELP for ${name}`);
        family.help = unescapeHelp(rest, line);
      } else {
        if ((family as { typed?: boolean }).typed) throw new ExpositionError(line, `second TYPE for ${name}`);
        if (!types.has(rest.trim() as ParsedType)) throw new ExpositionError(line, `unknown type ${rest}`);
        family.type = rest.trim() as ParsedType;
        (family as { typed?: boolean }).typed = true;
      }
      return;
    }

    const name = metricName.exec(raw)?.[0];
    if (!name) throw new ExpositionError(line, `bad sample line ${JSON.stringify(raw.slice(0, 40))}`);
    let rest = raw.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, line));
    const parts = rest.trim().split(/\s+/);
    if (!rest.startsWith(' ') || parts.length < 1 || parts.length > 2) {
      throw new ExpositionError(line, 'expected " <value> [timestamp]"');
    }
    const value = parseValue(parts[0], line);
    if (parts[1] !== undefined && !/^-?\d+$/.test(parts[1])) {
      throw new ExpositionError(line, `bad timestamp ${parts[1]}`);
    }

    let family = familyOf(name, families);
    if (!family) {
      family = { name, type: 'untyped', samples: [] };
      families.set(name, family);
    }
    if (finished.has(family.name)) throw new ExpositionError(line, `samples of ${family.name} are not contiguous`);
    if (current && current !== family) finished.add(current.name);
    current = family;
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (series.has(key)) throw new ExpositionError(line, `duplicate series ${name}${JSON.stringify(labels)}`);
    series.add(key);
    if (family.type === 'counter' && (value < 0 || Number.isNaN(value))) {
      throw new ExpositionError(line, `counter ${name} is ${value}`);
    }
    if (family.type === 'histogram') {
      if (name.endsWith('_bucket') && labels.le === undefined) {
        throw new ExpositionError(line, `bucket of ${family.name} without le`);
      }
      if (!name.endsWith('_bucket') && labels.le !== undefined) {
        throw new ExpositionError(line, `le on a non-bucket series ${name}`);
      }
      if (name === family.name) throw new ExpositionError(line, `histogram ${name} sample without _bucket/_sum/_count`);
    }
    family.samples.push({ name, labels, value });
  });

  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return [...families.values()];
}

/** Buckets cumulative and ending in +Inf, which equals _count, per label set. */
function checkHistogram(family: ParsedFamily): void {
  const groups = new Map<string, { buckets: { le: number; value: number }[]; count?: number; sum?: number }>();
  for (const sample of family.samples) {
    const { le, ...rest } = sample.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const group = groups.get(key) ?? { buckets: [] };
    groups.set(key, group);
    if (sample.name.endsWith('_bucket')) group.buckets.push({ le: parseValue(le, 0), value: sample.value });
    else if (sample.name.endsWith('_count')) group.count = sample.value;
    else group.sum = sample.value;
  }
  for (const [key, group] of groups) {
    const where = `${family.name}${key}`;
    if (group.count === undefined || group.sum === undefined) {
      throw new ExpositionError(0, `${where} lacks _count or _sum`);
    }
    const buckets = [...group.buckets].sort((a, b) => a.le - b.le);
    if (buckets.at(-1)?.le !== Infinity) throw new ExpositionError(0, `${where} has no +Inf bucket`);
    buckets.forEach((bucket, index) => {
      if (index > 0 && bucket.value < buckets[index - 1].value) {
        throw new ExpositionError(0, `${where} buckets are not cumulative`);
      }
    });
    if (buckets.at(-1)?.value !== group.count) throw new ExpositionError(0, `${where} +Inf bucket differs from _count`);
  }
}

/** The value of one series, or undefined: `sampleValue(families, 'x_total', { a: '1' })`. */
export function sampleValue(
  families: readonly ParsedFamily[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const family of families) {
    for (const sample of family.samples) {
      if (sample.name !== name) continue;
      if (Object.entries(labels).every(([key, value]) => sample.labels[key] === value)) return sample.value;
    }
  }
  return undefined;
}
