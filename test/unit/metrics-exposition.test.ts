import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { ExpositionError, parsePrometheusText, sampleValue } from '../../scripts/lib/prometheus-text.ts';
import { HttpError } from '../../supabase/functions/_shared/errors.ts';
import { metricCatalog, metricNames } from '../../supabase/functions/_shared/metrics/catalog.ts';
import { renderExposition } from '../../supabase/functions/_shared/metrics/exposition.ts';
import { RequestMetrics, requestMetricsMiddleware } from '../../supabase/functions/_shared/metrics/request-metrics.ts';
import type { AppEnv } from '../../supabase/functions/_shared/hono-env.ts';

describe('the Prometheus text renderer', () => {
  it('renders HELP, TYPE and escaped labels that the strict parser reads back', () => {
    const text = renderExposition([
      {
        name: 'demo_total',
        help: 'a "help"\nwith a newline and \\',
        type: 'counter',
        samples: [
          { labels: { path: 'a"b\\c\nd' }, value: 3 },
          { labels: { path: 'plain' }, value: 0 },
        ],
      },
      { name: 'demo_gauge', help: 'g', type: 'gauge', samples: [{ labels: {}, value: Number.NaN }] },
      { name: 'demo_empty', help: 'no samples yet', type: 'gauge', samples: [] },
    ]);
    expect(text).toContain('demo_total{path="a\\"b\\\\c\\nd"} 3\n');
    expect(text).toContain('# HELP demo_total a "help"\\nwith a newline and \\\\\n');
    const families = parsePrometheusText(text);
    expect(families.map((family) => [family.name, family.type])).toEqual([
      ['demo_total', 'counter'],
      ['demo_gauge', 'gauge'],
      ['demo_empty', 'gauge'],
    ]);
    expect(families[0].help).toBe('a "help"\nwith a newline and \\');
    expect(sampleValue(families, 'demo_total', { path: 'a"b\\c\nd' })).toBe(3);
    expect(sampleValue(families, 'demo_gauge')).toBeNaN();
  });

  it('refuses a bad metric name, a bad label name and a family rendered twice', () => {
    expect(() => renderExposition([{ name: 'bad-name', help: 'x', type: 'gauge', samples: [] }])).toThrow(
      /invalid metric name/,
    );
    expect(() =>
      renderExposition([{
        name: 'ok',
        help: 'x',
        type: 'gauge',
        samples: [{ labels: { 'bad-label': 'v' }, value: 1 }],
      }])
    )
      .toThrow(/invalid label name/);
    expect(() =>
      renderExposition([
        { name: 'twice', help: 'x', type: 'gauge', samples: [] },
        { name: 'twice', help: 'x', type: 'gauge', samples: [] },
      ])
    ).toThrow(/rendered twice/);
  });
});

describe('the strict exposition parser', () => {
  const bad: [string, string, RegExp][] = [
    ['no final newline', '# TYPE a gauge\na 1', /must end with a newline/],
    ['not a number', '# TYPE a gauge\na one\n', /not a number/],
    ['bad escape', '# TYPE a gauge\na{l="\\x"} 1\n', /bad escape/],
    ['unterminated label', '# TYPE a gauge\na{l="x} 1\n', /unterminated|expected/],
    ['duplicate label', '# TYPE a gauge\na{l="x",l="y"} 1\n', /duplicate label/],
    ['duplicate series', '# TYPE a gauge\na{l="x"} 1\na{l="x"} 2\n', /duplicate series/],
    ['TYPE after samples', 'a 1\n# TYPE a gauge\n', /after its samples/],
    ['second TYPE', '# TYPE a gauge\n# TYPE a counter\n', /second TYPE/],
    ['unknown type', '# TYPE a meter\n', /unknown type/],
    ['negative counter', '# TYPE a_total counter\na_total -1\n', /counter a_total is -1/],
    ['non-contiguous family', '# TYPE a gauge\na{x="1"} 1\n# TYPE b gauge\nb 1\na{x="2"} 1\n', /not contiguous/],
    ['bucket without le', '# TYPE h histogram\nh_bucket 1\nh_sum 1\nh_count 1\n', /without le/],
    ['no +Inf bucket', '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', /no \+Inf bucket/],
    [
      'non-cumulative buckets',
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
      /not cumulative/,
    ],
    [
      '+Inf differs from count',
      '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n',
      /differs from _count/,
    ],
    ['reserved label', '# TYPE a gauge\na{__name__="x"} 1\n', /reserved label/],
  ];
  for (const [what, text, message] of bad) {
    it(`refuses ${what}`, () => {
      expect(() => parsePrometheusText(text)).toThrow(ExpositionError);
      expect(() => parsePrometheusText(text)).toThrow(message);
    });
  }

  it('reads timestamps, comments, +Inf and an exponent', () => {
    const families = parsePrometheusText('# a comment\n# TYPE a gauge\na{x="1",} 1.5e3 1700000000000\na{x="2"} +Inf\n');
    expect(sampleValue(families, 'a', { x: '1' })).toBe(1500);
    expect(sampleValue(families, 'a', { x: '2' })).toBe(Infinity);
  });
});

describe('the metric catalog', () => {
  it('follows Prometheus naming: switchyard_ prefix, counters end in _total, durations in _seconds', () => {
    for (const metric of Object.values(metricCatalog)) {
      expect(metric.name).toMatch(/^switchyard_[a-z0-9_]+$/);
      if (metric.type === 'counter') expect(metric.name).toMatch(/_total$/);
      else expect(metric.name).not.toMatch(/_total$/);
      expect(metric.name).not.toMatch(/_(ms|milliseconds|minutes)$/);
      expect(metric.help.length).toBeGreaterThan(10);
    }
    expect(new Set(metricNames).size).toBe(metricNames.length);
  });
});

describe('request metrics middleware', () => {
  function demoApp(metrics: RequestMetrics) {
    const app = new Hono<AppEnv>().basePath('/demo');
    app.use(requestMetricsMiddleware(metrics, 'demo'));
    app.onError((error, c) => {
      const status = error instanceof HttpError ? error.status : 500;
      return c.json({ error: error.message }, status);
    });
    const items = new Hono<AppEnv>();
    items.get('/:id', (c) => {
      c.header('x-switchyard-provider', 'fake');
      c.header('x-switchyard-model', 'fake-1');
      return c.json({ id: c.req.param('id') });
    });
    items.post('/:id/spend', () => {
      throw new HttpError('budget_exceeded', 'over budget');
    });
    items.post('/:id/burst', () => {
      throw new HttpError('rate_limited', 'slow down');
    });
    items.post('/:id/upstream', () => {
      throw new HttpError('upstream_timeout', 'upstream timed out');
    });
    app.route('/items', items);
    return app;
  }

  it('labels by route pattern, status, provider and model, and times every request', async () => {
    const metrics = new RequestMetrics();
    const app = demoApp(metrics);
    await app.request('/demo/items/1');
    await app.request('/demo/items/2');
    await app.request('/demo/items/3/spend', { method: 'POST' });
    await app.request('/demo/items/3/burst', { method: 'POST' });
    await app.request('/demo/items/3/upstream', { method: 'POST' });
    await app.request('/demo/nowhere/at/all');

    const families = parsePrometheusText(renderExposition(metrics.families()));
    const requests = metricCatalog.httpRequests.name;
    expect(
      sampleValue(families, requests, { route: '/demo/items/:id', status: '200', provider: 'fake', model: 'fake-1' }),
    ).toBe(2);
    expect(sampleValue(families, requests, { route: '/demo/items/:id/spend', status: '402', provider: '' })).toBe(1);
    expect(sampleValue(families, requests, { route: 'unmatched', status: '404' })).toBe(1);
    expect(sampleValue(families, metricCatalog.budgetRejections.name, { function: 'demo' })).toBe(1);
    expect(sampleValue(families, metricCatalog.rateLimitRejections.name, { function: 'demo' })).toBe(1);
    expect(sampleValue(families, metricCatalog.upstreamErrors.name, { function: 'demo', type: 'upstream_timeout' }))
      .toBe(1);
    expect(sampleValue(families, metricCatalog.httpInFlight.name, { function: 'demo' })).toBe(0);
    const duration = metricCatalog.httpDuration.name;
    expect(sampleValue(families, `${duration}_count`, { route: '/demo/items/:id', method: 'GET' })).toBe(2);
    expect(sampleValue(families, `${duration}_bucket`, { route: '/demo/items/:id', method: 'GET', le: '+Inf' })).toBe(
      2,
    );
    // No raw path ever becomes a label value.
    expect(renderExposition(metrics.families())).not.toMatch(/items\/[0-9]/);
  });

  it('counts a request in flight while it runs', async () => {
    const metrics = new RequestMetrics();
    const app = new Hono<AppEnv>().basePath('/slow');
    app.use(requestMetricsMiddleware(metrics, 'slow'));
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    let entered: () => void = () => {};
    const inHandler = new Promise<void>((resolve) => (entered = resolve));
    app.get('/', async (c) => {
      entered();
      await gate;
      return c.text('done');
    });
    const pending = app.request('/slow');
    await inHandler;
    const during = parsePrometheusText(renderExposition(metrics.families()));
    expect(sampleValue(during, metricCatalog.httpInFlight.name, { function: 'slow' })).toBe(1);
    release();
    await pending;
    const after = parsePrometheusText(renderExposition(metrics.families()));
    expect(sampleValue(after, metricCatalog.httpInFlight.name, { function: 'slow' })).toBe(0);
  });
});
