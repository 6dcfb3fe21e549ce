// The budget form's validation and request body. The endpoint validates again and its message is shown;
// this only catches what a person can fix before sending.

export type BudgetScope = 'tenant' | 'api_key' | 'model';
export type BudgetUnit = 'usd_micros' | 'tokens';
export type BudgetPeriod = 'day' | 'month' | 'total';

export interface BudgetForm {
  scope: BudgetScope;
  apiKeyId: string;
  modelAlias: string;
  unit: BudgetUnit;
  period: BudgetPeriod;
  /** As typed: dollars for usd_micros, a count for tokens. */
  limit: string;
  overLimit: 'refuse' | 'cap';
}

export interface BudgetBody {
  tenant_id: string;
  scope: BudgetScope;
  api_key_id?: string;
  model_alias?: string;
  unit: BudgetUnit;
  period: BudgetPeriod;
  limit: number;
  over_limit: 'refuse' | 'cap';
}

export type BudgetFormResult = { ok: true; body: BudgetBody } | {
  ok: false;
  errors: Partial<Record<keyof BudgetForm, string>>;
};

/** The form as POST /ops/budgets takes it, or a message per field to fix. */
export function budgetBody(tenantId: string, form: BudgetForm): BudgetFormResult {
  const errors: Partial<Record<keyof BudgetForm, string>> = {};
  const text = form.limit.trim();
  let limit = Number.NaN;
  if (form.unit === 'usd_micros') {
    if (!/^\d+(\.\d{1,6})?$/.test(text)) {
      errors.limit = 'Enter an amount in US dollars, like 25 or 0.50 (up to 6 decimals).';
    } else limit = Math.round(Number(text) * 1_000_000);
  } else if (!/^\d+$/.test(text)) {
    errors.limit = 'Enter a whole number of tokens, like 100000.';
  } else {
    limit = Number(text);
  }
  if (!errors.limit && !Number.isSafeInteger(limit)) errors.limit = 'That limit is too large.';
  if (form.scope === 'api_key' && !form.apiKeyId) errors.apiKeyId = 'Pick the API key this budget applies to.';
  if (form.scope === 'model' && !form.modelAlias.trim()) errors.modelAlias = 'Name the model alias, like gpt-4o-mini.';
  if (Object.keys(errors).length > 0) return { ok: false, errors };
  return {
    ok: true,
    body: {
      tenant_id: tenantId,
      scope: form.scope,
      ...(form.scope === 'api_key' ? { api_key_id: form.apiKeyId } : {}),
      ...(form.scope === 'model' ? { model_alias: form.modelAlias.trim() } : {}),
      unit: form.unit,
      period: form.period,
      limit,
      over_limit: form.overLimit,
    },
  };
}

/** A budget amount for people: dollars for usd_micros, tokens otherwise. */
export function formatAmount(value: number, unit: BudgetUnit): string {
  if (unit === 'usd_micros') {
    return `$${(value / 1_000_000).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 6 })}`;
  }
  return `${value.toLocaleString('en-US')} tokens`;
}
