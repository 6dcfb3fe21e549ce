import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { Empty, ErrorNote, QueryState } from '../components/States.tsx';
import { useConsole } from '../context.ts';
import {
  budgetBody,
  type BudgetForm,
  type BudgetPeriod,
  type BudgetScope,
  type BudgetUnit,
  formatAmount,
} from '../lib/budget-form.ts';
import { budgetShares } from '../lib/usage.ts';
import { useApiKeys } from './Tenant.tsx';

interface Budget {
  id: string;
  scope: BudgetScope | 'bucket';
  api_key_id: string | null;
  model_alias: string | null;
  bucket: string | null;
  unit: BudgetUnit;
  period: BudgetPeriod;
  limit: number;
  over_limit: 'refuse' | 'cap';
  enabled: boolean;
  spent: number;
  reserved: number;
  overflow: number;
  window_start: string | null;
}

interface RateLimit {
  id: string;
  api_key_id: string | null;
  requests_per_minute: number | null;
  tokens_per_minute: number | null;
  burst: number;
}

const emptyForm: BudgetForm = {
  scope: 'tenant',
  apiKeyId: '',
  modelAlias: '',
  unit: 'usd_micros',
  period: 'month',
  limit: '',
  overLimit: 'refuse',
};

function formOf(budget: Budget): BudgetForm {
  return {
    scope: budget.scope === 'bucket' ? 'tenant' : budget.scope,
    apiKeyId: budget.api_key_id ?? '',
    modelAlias: budget.model_alias ?? '',
    unit: budget.unit,
    period: budget.period,
    limit: budget.unit === 'usd_micros' ? String(budget.limit / 1_000_000) : String(budget.limit),
    overLimit: budget.over_limit,
  };
}

export function BudgetsPage() {
  const { api, tenant } = useConsole();
  const queryClient = useQueryClient();
  const budgets = useQuery({
    queryKey: ['budgets', tenant.id],
    queryFn: () => api.get<{ items: Budget[] }>('/ops/budgets', { tenant_id: tenant.id }),
  });
  const limits = useQuery({
    queryKey: ['rate-limits', tenant.id],
    queryFn: () => api.get<{ items: RateLimit[] }>('/ops/rate-limits', { tenant_id: tenant.id }),
  });
  const keys = useApiKeys();
  const keyName = (id: string | null) => keys.data?.items.find((key) => key.id === id)?.name ?? id?.slice(0, 8);
  const [form, setForm] = useState<BudgetForm>(emptyForm);
  const [errors, setErrors] = useState<Partial<Record<keyof BudgetForm, string>>>({});
  const save = useMutation({
    mutationFn: (body: unknown) => api.send('POST', '/ops/budgets', body),
    onSuccess: async () => {
      setForm(emptyForm);
      await queryClient.invalidateQueries({ queryKey: ['budgets', tenant.id] });
    },
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    const result = budgetBody(tenant.id, form);
    if (!result.ok) {
      setErrors(result.errors);
      return;
    }
    setErrors({});
    save.mutate(result.body);
  }

  const field = (name: keyof BudgetForm) =>
    errors[name] ? { 'aria-invalid': true, 'aria-describedby': `budget-${name}-error` } : {};
  const fieldError = (name: keyof BudgetForm) =>
    errors[name] && <span className='field-error' id={`budget-${name}-error`}>{errors[name]}</span>;

  return (
    <>
      <QueryState query={budgets} what='budgets'>
        {(data) =>
          data.items.length === 0
            ? <Empty>No budgets: this tenant can spend without a limit.</Empty>
            : (
              <ul className='budgets'>
                {data.items.map((budget) => {
                  const shares = budgetShares(budget.spent, budget.reserved, budget.limit);
                  const target = budget.scope === 'api_key'
                    ? `key ${keyName(budget.api_key_id)}`
                    : budget.scope === 'model'
                    ? `model ${budget.model_alias}`
                    : budget.scope === 'bucket'
                    ? `bucket ${budget.bucket}`
                    : 'whole tenant';
                  return (
                    <li key={budget.id} className='budget' data-testid={`budget-${budget.id}`}>
                      <div className='budget-head'>
                        <strong>{target}</strong>, per {budget.period}: {formatAmount(budget.spent, budget.unit)} spent,
                        {' '}
                        {formatAmount(budget.reserved, budget.unit)} reserved of{' '}
                        {formatAmount(budget.limit, budget.unit)}
                        {budget.over_limit === 'cap' && ' (caps max_tokens when near)'}
                        {!budget.enabled && ' (disabled)'}
                        {budget.overflow > 0 && `, ${formatAmount(budget.overflow, budget.unit)} over (overflow)`}
                        {budget.scope !== 'bucket' && (
                          <button
                            type='button'
                            className='link'
                            onClick={() => setForm(formOf(budget))}
                          >
                            Edit
                          </button>
                        )}
                      </div>
                      <div
                        className='bar'
                        role='meter'
                        aria-valuemin={0}
                        aria-valuemax={budget.limit}
                        aria-valuenow={budget.spent + budget.reserved}
                        aria-label={`${target}: spent and reserved of the limit`}
                      >
                        <span className='bar-spent' style={{ width: `${shares.spent}%` }} />
                        <span className='bar-reserved' style={{ width: `${shares.reserved}%` }} />
                      </div>
                    </li>
                  );
                })}
              </ul>
            )}
      </QueryState>

      <form className='panel budget-form' onSubmit={submit} noValidate aria-labelledby='budget-form-title'>
        <h2 id='budget-form-title'>Create or change a budget</h2>
        <p className='muted'>One budget per scope, unit and period: saving an existing one changes its limit.</p>
        <label>
          Applies to
          <select value={form.scope} onChange={(e) => setForm({ ...form, scope: e.target.value as BudgetScope })}>
            <option value='tenant'>the whole tenant</option>
            <option value='api_key'>one API key</option>
            <option value='model'>one model alias</option>
          </select>
        </label>
        {form.scope === 'api_key' && (
          <label>
            API key
            <select
              value={form.apiKeyId}
              onChange={(e) => setForm({ ...form, apiKeyId: e.target.value })}
              {...field('apiKeyId')}
            >
              <option value=''>choose…</option>
              {keys.data?.items.filter((key) => !key.revoked_at).map((key) => (
                <option key={key.id} value={key.id}>{key.name}</option>
              ))}
            </select>
            {fieldError('apiKeyId')}
          </label>
        )}
        {form.scope === 'model' && (
          <label>
            Model alias
            <input
              value={form.modelAlias}
              onChange={(e) => setForm({ ...form, modelAlias: e.target.value })}
              {...field('modelAlias')}
            />
            {fieldError('modelAlias')}
          </label>
        )}
        <label>
          Unit
          <select value={form.unit} onChange={(e) => setForm({ ...form, unit: e.target.value as BudgetUnit })}>
            <option value='usd_micros'>US dollars</option>
            <option value='tokens'>tokens</option>
          </select>
        </label>
        <label>
          Period
          <select value={form.period} onChange={(e) => setForm({ ...form, period: e.target.value as BudgetPeriod })}>
            <option value='day'>day</option>
            <option value='month'>month</option>
            <option value='total'>total</option>
          </select>
        </label>
        <label>
          Limit {form.unit === 'usd_micros' ? '(USD)' : '(tokens)'}
          <input
            inputMode='decimal'
            value={form.limit}
            onChange={(e) => setForm({ ...form, limit: e.target.value })}
            {...field('limit')}
          />
          {fieldError('limit')}
        </label>
        <label>
          Over the limit
          <select
            value={form.overLimit}
            onChange={(e) => setForm({ ...form, overLimit: e.target.value as BudgetForm['overLimit'] })}
          >
            <option value='refuse'>refuse (402)</option>
            <option value='cap'>cap max_tokens</option>
          </select>
        </label>
        <button type='submit' className='primary' disabled={save.isPending}>Save budget</button>
        {save.error && <ErrorNote error={save.error} what='save the budget' />}
      </form>

      <section aria-labelledby='limits-title'>
        <h2 id='limits-title'>Rate limits</h2>
        <QueryState query={limits} what='rate limits'>
          {(data) =>
            data.items.length === 0 ? <Empty>No rate limits.</Empty> : (
              <table>
                <thead>
                  <tr>
                    <th scope='col'>Applies to</th>
                    <th scope='col'>Requests/min</th>
                    <th scope='col'>Tokens/min</th>
                    <th scope='col'>Burst</th>
                  </tr>
                </thead>
                <tbody>
                  {data.items.map((limit) => (
                    <tr key={limit.id}>
                      <td>{limit.api_key_id ? `key ${keyName(limit.api_key_id)}` : 'whole tenant'}</td>
                      <td>{limit.requests_per_minute ?? '—'}</td>
                      <td>{limit.tokens_per_minute ?? '—'}</td>
                      <td>{limit.burst}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
        </QueryState>
      </section>
    </>
  );
}
