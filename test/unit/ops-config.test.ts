import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../scripts/lib/paths.ts';
import { promtool, promtoolRequired } from '../../scripts/lib/promtool.ts';
import { metricCatalog, metricNames } from '../../supabase/functions/_shared/metrics/catalog.ts';

const opsDir = path.join(repoRoot, 'ops');
const histogramNames = Object.values(metricCatalog).filter((metric) => metric.type === 'histogram').map((metric) =>
  metric.name
);

/** The exported families a PromQL expression reads; throws on a switchyard_ name the service does not export. */
function referencedFamilies(expr: string): string[] {
  const names = [...expr.matchAll(/\b(switchyard_[a-z0-9_]+)/g)].map((match) => match[1]);
  return names.map((name) => {
    const base = histogramNames.find((histogram) =>
      ['_bucket', '_sum', '_count'].some((suffix) => name === `${histogram}${suffix}`)
    );
    const family = base ?? name;
    if (!metricNames.includes(family)) throw new Error(`${name} in "${expr}" is not exported by the metrics function`);
    return family;
  });
}

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string; refId: string }[];
  panels?: Panel[];
}

async function dashboardPanels(): Promise<Panel[]> {
  const dashboard = JSON.parse(await readFile(path.join(opsDir, 'grafana', 'switchyard-dashboard.json'), 'utf8')) as {
    panels: Panel[];
    uid: string;
  };
  expect(dashboard.uid).toBe('switchyard-overview');
  return dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]).filter((panel) => panel.type !== 'row');
}

/** `expr:` values of the alert rules (kept on one line each, so a regex reads them). */
async function alertRules(): Promise<{ alert: string; expr: string }[]> {
  const text = await readFile(path.join(opsDir, 'alerts.yml'), 'utf8');
  const rules: { alert: string; expr: string }[] = [];
  let alert: string | undefined;
  for (const line of text.split('\n')) {
    const name = /^\s*- alert:\s*(\S+)\s*$/.exec(line);
    if (name) alert = name[1];
    const expr = /^\s*expr:\s*(.+)$/.exec(line);
    if (expr) {
      if (!alert) throw new Error(`expr without an alert: ${line}`);
      rules.push({ alert, expr: expr[1] });
      alert = undefined;
    }
  }
  return rules;
}

describe('ops/grafana dashboard', () => {
  it('parses, and every panel query references a metric the metrics function exports', async () => {
    const panels = await dashboardPanels();
    expect(panels.length).toBeGreaterThanOrEqual(15);
    const used = new Set<string>();
    for (const panel of panels) {
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) {
        const families = referencedFamilies(target.expr);
        expect(families.length, `${panel.title}: ${target.expr}`).toBeGreaterThan(0);
        for (const family of families) used.add(family);
      }
    }
    expect(new Set(panels.map((panel) => panel.title)).size).toBe(panels.length);
    // What the launch checklist asks the dashboard to show.
    for (
      const family of [
        metricCatalog.httpRequests,
        metricCatalog.httpDuration,
        metricCatalog.httpInFlight,
        metricCatalog.llmCost,
        metricCatalog.budgetRejections,
        metricCatalog.jobs,
        metricCatalog.dlqDepth,
        metricCatalog.oldestQueuedAge,
      ]
    ) {
      expect(used, family.name).toContain(family.name);
    }
    const latency = panels.find((panel) => /p50 \/ p95 \/ p99/.test(panel.title));
    expect(latency?.targets?.map((target) => /histogram_quantile\((0\.\d+)/.exec(target.expr)?.[1])).toEqual([
      '0.50',
      '0.95',
      '0.99',
    ]);
  });

  it('the reference check itself fails on a metric the service does not export', () => {
    expect(() => referencedFamilies('rate(switchyard_made_up_total[5m])')).toThrow(/not exported/);
    expect(referencedFamilies('rate(switchyard_http_request_duration_seconds_bucket[5m])')).toEqual([
      metricCatalog.httpDuration.name,
    ]);
  });
});

describe('ops/alerts.yml', () => {
  it('has the launch alerts, each on exported metrics', async () => {
    const rules = await alertRules();
    expect(rules.map((rule) => rule.alert)).toEqual(expect.arrayContaining([
      'SwitchyardJobsFailing',
      'SwitchyardDlqGrowing',
      'SwitchyardQueueLatencyHigh',
      'SwitchyardP95LatencyHigh',
      'SwitchyardErrorRateHigh',
      'SwitchyardBudgetInvariantViolated',
      'SwitchyardProviderDown',
    ]));
    for (const rule of rules) expect(referencedFamilies(rule.expr).length, rule.alert).toBeGreaterThan(0);
    expect(rules.find((rule) => rule.alert === 'SwitchyardQueueLatencyHigh')?.expr).toMatch(/> 5$/);
    expect(rules.find((rule) => rule.alert === 'SwitchyardP95LatencyHigh')?.expr).toMatch(
      /histogram_quantile\(0\.95,.*> 0\.5$/,
    );
    expect(rules.find((rule) => rule.alert === 'SwitchyardErrorRateHigh')?.expr).toMatch(/> 0\.01$/);
  });

  it('passes promtool check rules, its unit tests, and check config (promtool required in CI)', async () => {
    const checked = promtool(['check', 'rules', 'ops/alerts.yml']);
    if (checked === undefined) {
      expect(promtoolRequired, 'promtool is not installed (Debian: apt-get install prometheus); REQUIRE_PROMTOOL=1')
        .toBe(false);
      // Without promtool the structural checks above are what runs.
      expect((await alertRules()).length).toBeGreaterThanOrEqual(7);
      return;
    }
    expect(checked.output).toMatch(/SUCCESS: \d+ rules found/);
    expect(checked.code, checked.output).toBe(0);

    const tested = promtool(['test', 'rules', 'ops/alerts.test.yml']);
    expect(tested?.code, tested?.output).toBe(0);

    // check config also checks that the token file exists: give it one in a scratch copy.
    const scratch = await mkdtemp(path.join(os.tmpdir(), 'switchyard-ops-'));
    try {
      await mkdir(path.join(scratch, 'ops'));
      await mkdir(path.join(scratch, '.switchyard'));
      await copyFile(path.join(opsDir, 'prometheus.yml'), path.join(scratch, 'ops', 'prometheus.yml'));
      await copyFile(path.join(opsDir, 'alerts.yml'), path.join(scratch, 'ops', 'alerts.yml'));
      await writeFile(path.join(scratch, '.switchyard', 'metrics-token'), 'scratch-token');
      const config = promtool(['check', 'config', path.join(scratch, 'ops', 'prometheus.yml')]);
      expect(config?.code, config?.output).toBe(0);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });

  it('promtool refuses a broken rule file (the check can fail)', async () => {
    const scratch = await mkdtemp(path.join(os.tmpdir(), 'switchyard-ops-'));
    try {
      const broken = path.join(scratch, 'broken.yml');
      await writeFile(
        broken,
        'groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: rate(switchyard_http_requests_total[5m] > 1\n',
      );
      const result = promtool(['check', 'rules', broken]);
      if (result === undefined) {
        expect(promtoolRequired).toBe(false);
        expect(() => referencedFamilies('rate(switchyard_not_there[5m])')).toThrow();
        return;
      }
      expect(result.code).not.toBe(0);
      expect(result.output).toMatch(/FAILED|error/i);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });
});
