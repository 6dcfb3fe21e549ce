import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConsole, type ConsoleServer, serveConsole } from '../../scripts/lib/console-server.ts';
import { repoRoot } from '../../scripts/lib/paths.ts';
import { claimJobs, enqueueJob, failJob, registerJobKind } from '../../supabase/functions/_shared/jobs/index.ts';
import {
  addMember,
  call,
  connectDatabase,
  createTenant,
  createUser,
  headersFor,
  serviceHeaders,
  signUserToken,
  stack,
} from '../helpers/stack.ts';

// The operator console in a real browser (Debian's Chromium through playwright-core) against the
// real stack: built once with Vite, served on the port whose origin the functions allow (CORS).
const sql = connectDatabase();
const suffix = crypto.randomUUID().slice(0, 8);
const jobKind = `test.console.${suffix}`;
const screenshotDir = path.join(repoRoot, 'reports', 'console');
let buildDir: string;
let server: ConsoleServer;
let browser: Browser;
let tenantA: { id: string; name: string };
let tenantB: { id: string; name: string };
let adminA: string;
let memberA: string;
let deadJobId: string;

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

async function newTenant(label: string) {
  const name = `Console ${label} ${suffix}`;
  return { id: await createTenant(name), name };
}

async function chat(apiKey: string, content: string) {
  const response = await call('/llm-router/v1/chat/completions', {
    method: 'POST',
    headers: headersFor(apiKey),
    body: JSON.stringify({ model: 'demo-chat', messages: [{ role: 'user', content }] }),
  });
  expect(response.status).toBe(200);
  await response.json();
}

beforeAll(async () => {
  buildDir = await mkdtemp(path.join(os.tmpdir(), 'switchyard-console-'));
  await buildConsole(buildDir);
  server = await serveConsole({
    distDir: buildDir,
    port: stack.consolePort,
    config: { functionsUrl: stack.functionsUrl, anonKey: stack.anonKey },
  });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-sync',
    ],
  });
  await mkdir(screenshotDir, { recursive: true });

  tenantA = await newTenant('A');
  tenantB = await newTenant('B');
  adminA = await createUser(sql, 'console-admin-a');
  memberA = await createUser(sql, 'console-member-a');
  const adminB = await createUser(sql, 'console-admin-b');
  await addMember(sql, tenantA.id, adminA, 'admin');
  await addMember(sql, tenantA.id, memberA, 'member');
  await addMember(sql, tenantB.id, adminB, 'admin');

  // Three router calls of tenant A, through the demo provider: its usage for the charts.
  const created = await call(`/ops/tenants/${tenantA.id}/api-keys`, {
    method: 'POST',
    headers: serviceHeaders(),
    body: JSON.stringify({ name: 'traffic' }),
  });
  const { key } = (await created.json()) as { key: string };
  for (const content of ['one', 'two', 'three']) await chat(key, content);

  // A job of tenant A that failed for good: waiting in the DLQ.
  await registerJobKind(sql, { kind: jobKind, description: 'console test', maxAttempts: 1 });
  deadJobId = await enqueueJob(sql, jobKind, { console: true }, { tenantId: tenantA.id, priority: -32_000 });
  const [job] = await claimJobs(sql, { worker: `console-${suffix}`, kinds: [jobKind], batchSize: 1 });
  expect(job.id).toBe(deadJobId);
  expect(await failJob(sql, deadJobId, job.leaseToken, 'upstream said no', { retryable: false })).toBe('failed_dlq');
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await sql.end();
  if (buildDir) await rm(buildDir, { recursive: true, force: true });
});

/** A page that fails a wait after 45 s (naming the locator), well inside the test's time. */
async function newPage(options: Parameters<Browser['newPage']>[0]): Promise<Page> {
  const page = await browser.newPage(options);
  // Waits are for state; the bound is generous because the suite runs beside other browser and stack tests.
  page.setDefaultTimeout(45_000);
  return page;
}

async function openAsService(options: { bypassCSP?: boolean } = {}): Promise<Page> {
  const page = await newPage({ viewport: { width: 1280, height: 900 }, ...options });
  await page.goto(server.url);
  await page.getByLabel('Service key', { exact: true }).fill(stack.serviceRoleKey);
  await page.getByRole('button', { name: 'Use service key' }).click();
  await page.getByLabel('Tenant').selectOption(tenantA.id);
  return page;
}

/** Signs in with a link as `npm start` prints it: the user's token in the fragment. */
async function openWithLink(userId: string, viewport = { width: 1280, height: 900 }): Promise<Page> {
  const page = await newPage({ viewport });
  await page.goto(`${server.url}/#access_token=${await signUserToken(userId, { algorithm: 'ES256' })}`);
  return page;
}

async function usageOfA() {
  const response = await call(`/ops/usage?tenant_id=${tenantA.id}&group_by=provider,model`, {
    headers: serviceHeaders(),
  });
  const { items } = (await response.json()) as {
    items: {
      provider: string;
      model: string;
      requests: number;
      prompt_tokens: number;
      completion_tokens: number;
      cost_usd_micros: number;
    }[];
  };
  return items;
}

async function goTo(page: Page, title: string) {
  await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: title }).click();
  await page.getByRole('heading', { level: 1, name: title }).waitFor();
}

describe('operator console', { timeout: 180_000 }, () => {
  it('signs in with a service key and charts the tenant usage by provider and model', async () => {
    // The page's content security policy would refuse the axe-core script this test injects.
    const page = await openAsService({ bypassCSP: true });
    const usage = await usageOfA();
    expect(usage).toEqual([expect.objectContaining({ provider: 'switchyard-demo', model: 'demo-chat', requests: 3 })]);
    const tokens = usage[0].prompt_tokens + usage[0].completion_tokens;

    await page.getByTestId('stat-requests').filter({ hasText: /^3$/ }).waitFor();
    expect(await page.getByTestId('stat-tokens').textContent()).toBe(tokens.toLocaleString('en-US'));
    expect(await page.getByTestId('stat-dlq').textContent()).toBe('1');
    await page.getByTestId('stat-readiness').filter({ hasText: /^(GO|NO-GO)$/ }).waitFor();

    // The requests chart: a canvas Chart.js drew on, for the tenant's one provider/model, with today's 3.
    const chart = page.getByTestId('chart-Requests per day');
    const canvas = chart.locator('canvas');
    expect(await canvas.getAttribute('aria-label')).toBe('Requests per day, stacked by switchyard-demo / demo-chat');
    const painted = await canvas.evaluate((element: HTMLCanvasElement) => {
      const { data } = element.getContext('2d')!.getImageData(0, 0, element.width, element.height);
      return data.some((value, index) => index % 4 === 3 && value > 0);
    });
    expect(painted).toBe(true);
    await chart.getByText('Show the numbers').click();
    const today = new Date().toISOString().slice(0, 10);
    const todayRow = chart.getByRole('row', { name: new RegExp(`^${today}`) });
    expect(await todayRow.getByRole('cell').allTextContents()).toEqual(['3']);
    await page.screenshot({ path: path.join(screenshotDir, 'overview.png'), fullPage: true });

    // No serious or critical accessibility violation on the page (axe-core).
    await page.addScriptTag({ content: axeSource });
    const violations = await page.evaluate(async () => {
      // deno-lint-ignore no-explicit-any -- axe is the script injected above
      const result = await (window as any).axe.run(document);
      return (result.violations as { id: string; impact: string }[])
        .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
        .map((violation) => violation.id);
    });
    expect(violations).toEqual([]);
    await page.close();
  });

  it('shows a tenant admin only their tenant, and a refusal as the endpoint says it', async () => {
    const page = await openWithLink(adminA);
    await page.getByTestId('stat-requests').filter({ hasText: /^3$/ }).waitFor();
    const options = await page.getByLabel('Tenant').locator('option').allTextContents();
    expect(options).toEqual([`${tenantA.name} (admin)`]);
    expect(await page.content()).not.toContain(tenantB.name);

    // Budgets are changed by operators (service role) only: the endpoint's message, shown as it is.
    await goTo(page, 'Budgets');
    await page.getByLabel(/^Limit/).fill('5');
    await page.getByRole('button', { name: 'Save budget' }).click();
    const alert = page.getByRole('alert').filter({ hasText: 'Could not save the budget' });
    await alert.waitFor();
    expect(await alert.locator('.error-message').textContent()).toBe(
      'only operators (service role) can change budgets',
    );
    await page.screenshot({ path: path.join(screenshotDir, 'budgets-refused.png'), fullPage: true });
    await page.close();
  });

  it('shows a plain member why the dead-letter queue is closed to them', async () => {
    const page = await openWithLink(memberA, { width: 390, height: 844 });
    await goTo(page, 'Jobs and DLQ');
    const alert = page.getByRole('alert').filter({ hasText: 'Could not load dead letters' });
    await alert.waitFor();
    expect(await alert.locator('.error-message').textContent()).toBe('you are not an operator or admin of any tenant');
    await page.screenshot({ path: path.join(screenshotDir, 'jobs-member-phone.png'), fullPage: true });
    await page.close();
  });

  it('creates an API key shown once, which works, then revokes it after a confirmation', async () => {
    const page = await openWithLink(adminA);
    await goTo(page, 'Tenant and API keys');
    await page.getByLabel('Key name').fill('console-created');
    await page.getByRole('button', { name: 'Create key' }).click();
    const shown = page.getByTestId('created-key-value');
    await shown.waitFor();
    const key = (await shown.textContent())!;
    expect(key).toMatch(/^sy_/);
    const models = await call('/llm-router/v1/models', { headers: headersFor(key) });
    expect(models.status).toBe(200);

    await page.getByRole('button', { name: 'I have stored it' }).click();
    const row = page.getByTestId('api-key-console-created');
    await row.waitFor();
    expect(await page.content()).not.toContain(key);
    await goTo(page, 'Overview');
    await goTo(page, 'Tenant and API keys');
    await row.waitFor();
    expect(await page.content()).not.toContain(key);

    await row.getByRole('button', { name: 'Revoke' }).click();
    await row.getByRole('button', { name: 'Confirm revoke' }).click();
    await row.getByText(/^revoked /).waitFor();
    const refused = await call('/llm-router/v1/models', { headers: headersFor(key) });
    expect(refused.status).toBe(401);
    await page.screenshot({ path: path.join(screenshotDir, 'tenant-keys.png'), fullPage: true });
    await page.close();
  });

  it('retries a dead letter with a dry run first and a reason, and it leaves the queue', async () => {
    const page = await openAsService();
    await goTo(page, 'Jobs and DLQ');
    const row = page.getByTestId(`dead-letter-${deadJobId}`);
    await row.waitFor();
    expect(await row.getByRole('cell').nth(3).textContent()).toBe('upstream said no');

    await row.getByRole('button', { name: deadJobId.slice(0, 8) }).click();
    await page.getByTestId('job-status').filter({ hasText: 'failed_dlq' }).waitFor();
    expect(await page.getByTestId('job-timeline').locator('strong').allTextContents()).toEqual([
      'queued',
      'assigned',
      'failed_dlq',
    ]);

    await row.getByRole('checkbox').check();
    await page.getByLabel(/^Reason/).fill(`console retry ${suffix}`);
    await page.getByRole('button', { name: 'Preview (dry run)' }).click();
    await page.getByTestId('retry-preview').filter({ hasText: '1 would be requeued' }).waitFor();
    const [before] = await sql<{ status: string }[]>`select status from public.jobs where id = ${deadJobId}`;
    expect(before.status).toBe('failed_dlq');

    await page.getByRole('button', { name: /^Requeue/ }).click();
    await page.getByTestId('retry-done').filter({ hasText: 'Requeued 1' }).waitFor();
    await row.waitFor({ state: 'detached' });
    const [after] = await sql<{ status: string; reason: string }[]>`
      select j.status, e.details->>'reason' as reason
      from public.jobs j join public.job_events e on e.job_id = j.id and e.event = 'requeued'
      where j.id = ${deadJobId}`;
    expect(after).toEqual({ status: 'queued', reason: `console retry ${suffix}` });
    await page.getByTestId('job-status').filter({ hasText: 'queued' }).waitFor();
    await page.screenshot({ path: path.join(screenshotDir, 'jobs-dlq.png'), fullPage: true });
    await page.close();
  });

  it('creates a budget as the service role and shows it as a bar against its limit', async () => {
    const page = await openAsService();
    await goTo(page, 'Budgets');
    await page.getByLabel(/^Limit/).fill('five');
    await page.getByRole('button', { name: 'Save budget' }).click();
    await page.getByText('Enter an amount in US dollars').waitFor();

    await page.getByLabel(/^Limit/).fill('5');
    await page.getByLabel('Period').selectOption('day');
    await page.getByRole('button', { name: 'Save budget' }).click();
    const budget = page.locator('.budget', { hasText: 'whole tenant' });
    await budget.filter({ hasText: 'of $5.00' }).waitFor();
    const meter = budget.getByRole('meter');
    expect(await meter.getAttribute('aria-valuemax')).toBe('5000000');
    const [stored] = await sql<{ limit_amount: string; period: string }[]>`
      select limit_amount::text, period from public.budgets where tenant_id = ${tenantA.id} and scope = 'tenant'`;
    expect(stored).toEqual({ limit_amount: '5000000', period: 'day' });
    await page.screenshot({ path: path.join(screenshotDir, 'budgets.png'), fullPage: true });
    await page.close();
  });

  it('explores usage by provider and model and exports it as CSV', async () => {
    const page = await openAsService();
    await goTo(page, 'Usage');
    const table = page.getByTestId('usage-table');
    const row = table.getByRole('row', { name: /^switchyard-demo \/ demo-chat/ });
    await row.waitFor();
    expect((await row.getByRole('cell').allTextContents())[0]).toBe('3');

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export CSV' }).click(),
    ]);
    const csv = await readFile((await download.path())!, 'utf8');
    const [usage] = await usageOfA();
    expect(csv.split('\r\n')).toEqual([
      'provider,model,requests,prompt_tokens,completion_tokens,cost_usd_micros,cache_hits',
      `switchyard-demo,demo-chat,3,${usage.prompt_tokens},${usage.completion_tokens},${usage.cost_usd_micros},0`,
      '',
    ]);
    await page.screenshot({ path: path.join(screenshotDir, 'usage.png'), fullPage: true });
    await page.close();
  });

  it('stores, rotates and disables a provider key, never showing a secret, with the audit log', async () => {
    const page = await openAsService();
    await goTo(page, 'Key vault');
    const label = `console-${suffix}`;
    const firstSecret = `sk-console-first-${suffix}-1111`;
    const secondSecret = `sk-console-second-${suffix}-2222`;
    const form = page.getByRole('form', { name: 'Store a provider key' });
    await form.getByLabel('Provider').fill('openai');
    await form.getByLabel('Label').fill(label);
    await form.getByLabel('Secret').fill(firstSecret);
    await form.getByRole('button', { name: 'Store encrypted' }).click();
    const card = page.getByRole('article', { name: `openai ${label}` });
    await card.waitFor();
    expect(await form.getByLabel('Secret').inputValue()).toBe('');
    expect(await card.getByRole('row', { name: /^1 active/ }).getByText('…1111').count()).toBe(1);

    await card.getByLabel('New secret').fill(secondSecret);
    await card.getByLabel(/^Grace/).fill('0');
    await card.getByRole('button', { name: 'Rotate' }).click();
    await card.getByRole('row', { name: /^2 active/ }).waitFor();
    await card.getByRole('row', { name: /^1 disabled/ }).waitFor();
    expect(await card.getByLabel('New secret').inputValue()).toBe('');

    await card.getByRole('button', { name: 'Show audit log' }).click();
    const audit = card.locator('ol.timeline');
    await audit.getByText('rotate').waitFor();
    // Newest first; a rotation with no grace disables the old version in the same transaction.
    const actions = await audit.locator('strong').allTextContents();
    expect(actions.at(-1)).toBe('create');
    expect(actions.toSorted()).toEqual(['create', 'disable', 'rotate']);
    const html = await page.content();
    expect(html).not.toContain(firstSecret);
    expect(html).not.toContain(secondSecret);
    await page.screenshot({ path: path.join(screenshotDir, 'key-vault.png'), fullPage: true });
    await page.close();
  });
});
