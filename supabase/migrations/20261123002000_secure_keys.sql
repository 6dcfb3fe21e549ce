-- The key vault's tables: provider API keys stored only as ciphertext
-- (envelope encryption, _shared/vault/envelope.ts), one row per version, and
-- an append-only audit of every change and every decrypt. There is no
-- plaintext column anywhere; tenants read metadata, never ciphertext.

create table public.secure_keys (
  id uuid primary key default gen_random_uuid(),
  -- The logical key every version of it shares (the keys API's :id).
  key_id uuid not null,
  -- null: a global key, used by every tenant that has none of its own.
  tenant_id uuid references public.tenants (id) on delete cascade,
  -- The provider's key name in the catalog (llm_providers.key_name, else its slug).
  provider text not null check (provider ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  label text not null default 'default' check (label ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
  version_int integer not null check (version_int >= 1),
  status text not null default 'active' check (status in ('active', 'grace', 'disabled')),
  -- AES-256-GCM output (ciphertext and tag) under this version's own data key.
  ciphertext bytea not null check (length(ciphertext) > 16),
  iv bytea not null check (length(iv) = 12),
  -- The data key, wrapped by the key-encryption key kek_id (the KMS holds that key).
  wrapped_data_key bytea not null check (length(wrapped_data_key) between 16 and 4096),
  kek_id text not null check (kek_id ~ '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$'),
  is_encrypted boolean not null default true,
  -- Last four characters of the secret, for display; empty for short secrets.
  last4 text not null default '' check (length(last4) <= 4),
  created_at timestamptz not null default now(),
  grace_until timestamptz,
  disabled_at timestamptz,
  rewrapped_at timestamptz,
  constraint secure_keys_is_encrypted_check check (is_encrypted),
  constraint secure_keys_status_dates_check check (
    (status = 'active' and grace_until is null and disabled_at is null)
    or (status = 'grace' and grace_until is not null and disabled_at is null)
    or (status = 'disabled' and disabled_at is not null)
  ),
  constraint secure_keys_key_version_unique unique (key_id, version_int)
);
comment on table public.secure_keys is
  'Provider API keys, one row per version, encrypted at rest (envelope encryption); no plaintext column.';

-- One active version per (tenant, provider, label); a global key has tenant_id null.
create unique index secure_keys_one_active_version
  on public.secure_keys (tenant_id, provider, label) nulls not distinct
  where status = 'active';
-- Versions are numbered per (tenant, provider, label); also the tenant_id foreign-key index.
create unique index secure_keys_identity_version
  on public.secure_keys (tenant_id, provider, label, version_int) nulls not distinct;
-- The grace-expiry sweep.
create index secure_keys_grace_until_idx on public.secure_keys (grace_until) where status = 'grace';

create table public.secure_keys_audit (
  id bigint generated always as identity primary key,
  key_id uuid not null,
  tenant_id uuid references public.tenants (id) on delete cascade,
  provider text not null,
  label text not null,
  version_int integer,
  action text not null check (action in ('create', 'rotate', 'disable', 'decrypt', 'rewrap')),
  -- 'user:<uuid>', 'service_role', 'llm-router', 'script:keys-rewrap', 'system:grace-expiry', …
  actor text not null check (length(actor) between 1 and 200),
  request_id text check (length(request_id) <= 128),
  -- Statuses, key-encryption key ids, reasons: never the secret or key material.
  details jsonb not null default '{}'::jsonb,
  at timestamptz not null default now()
);
comment on table public.secure_keys_audit is
  'Who created, rotated, disabled, decrypted or re-wrapped which key version, and when; append-only, never the secret.';
create index secure_keys_audit_key_id_at_idx on public.secure_keys_audit (key_id, at);
create index secure_keys_audit_tenant_id_idx on public.secure_keys_audit (tenant_id);

alter table public.secure_keys enable row level security;
alter table public.secure_keys_audit enable row level security;

revoke all on table public.secure_keys, public.secure_keys_audit from anon, authenticated;
revoke all on sequence public.secure_keys_audit_id_seq from anon, authenticated;

-- Tenant users read metadata only: ciphertext, iv and the wrapped data key
-- are not in the column grant, so selecting them is refused outright.
grant select (
  id, key_id, tenant_id, provider, label, version_int, status, kek_id, is_encrypted, last4,
  created_at, grace_until, disabled_at, rewrapped_at
) on table public.secure_keys to authenticated;
-- Admins write through the keys function (invoker SQL functions, so RLS decides);
-- triggers keep versions immutable and audit every change.
grant insert (key_id, tenant_id, provider, label, version_int, status, ciphertext, iv, wrapped_data_key, kek_id,
  is_encrypted, last4) on table public.secure_keys to authenticated;
grant update (status, grace_until, disabled_at) on table public.secure_keys to authenticated;
grant select on table public.secure_keys_audit to authenticated;

-- Versions are disabled, never deleted (the audit refers to them); the audit is append-only.
grant select, insert, update on table public.secure_keys to service_role;
grant select, insert on table public.secure_keys_audit to service_role;
grant usage on sequence public.secure_keys_audit_id_seq to service_role;

create policy "Members can read their tenants' key metadata"
  on public.secure_keys for select to authenticated
  using (tenant_id in (select private.tenant_ids_of_current_user()));

create policy "Admins can add keys and versions to their tenants"
  on public.secure_keys for insert to authenticated
  with check (tenant_id in (select private.tenant_ids_of_current_user(array['admin'])));

create policy "Admins can rotate and disable their tenants' key versions"
  on public.secure_keys for update to authenticated
  using (tenant_id in (select private.tenant_ids_of_current_user(array['admin'])))
  with check (tenant_id in (select private.tenant_ids_of_current_user(array['admin'])));

create policy "Members can read their tenants' key audit"
  on public.secure_keys_audit for select to authenticated
  using (tenant_id in (select private.tenant_ids_of_current_user()));
