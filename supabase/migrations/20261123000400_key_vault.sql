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

-- Range-partitioned by month (at), like usage_records: retention drops whole
-- months past the longest retention (schedules_and_retention).
create table public.secure_keys_audit (
  id bigint generated always as identity,
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
  at timestamptz not null default now(),
  primary key (id, at)
) partition by range (at);
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

-- The key vault's invariants, whoever writes (the keys function, the Data
-- API, a script): versions are numbered 1, 2, 3, … per key and share the
-- key's tenant, provider and label; a stored version never changes except
-- its status and its wrapping; disabled is final; and every change writes
-- exactly one audit row.

-- Who is changing keys, for the audit: a user from the JWT (not spoofable by
-- a setting), else the actor the caller declared (switchyard.actor), else the
-- JWT role, else the database session user.
create function private.secure_key_actor()
returns text
language sql
stable
set search_path = ''
as $$
  select case
    when (select auth.role()) = 'authenticated' then 'user:' || coalesce((select auth.uid())::text, 'unknown')
    else coalesce(
      nullif(pg_catalog.current_setting('switchyard.actor', true), ''),
      nullif((select auth.role()), ''),
      'db:' || session_user::text
    )
  end
$$;
comment on function private.secure_key_actor() is 'The actor the key audit records for the current transaction.';
revoke execute on function private.secure_key_actor() from public, anon, authenticated;
grant execute on function private.secure_key_actor() to service_role;

-- New versions: version 1 of a new key, or the next number of an existing key
-- with the same tenant, provider and label; always inserted active.
-- SECURITY DEFINER: it must see every version of the key, whatever RLS shows the caller.
create function private.secure_keys_check_new_version()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_existing record;
begin
  if new.status <> 'active' then
    raise exception 'a new key version must be active' using errcode = 'check_violation';
  end if;
  select k.tenant_id, k.provider, k.label, max(k.version_int) as latest
  into v_existing
  from public.secure_keys k
  where k.key_id = new.key_id
  group by k.tenant_id, k.provider, k.label;
  if not found then
    if new.version_int <> 1 then
      raise exception 'the first version of a key is 1, not %', new.version_int using errcode = 'check_violation';
    end if;
    return new;
  end if;
  if v_existing.tenant_id is distinct from new.tenant_id
     or v_existing.provider <> new.provider or v_existing.label <> new.label then
    raise exception 'every version of a key has the same tenant, provider and label' using errcode = 'check_violation';
  end if;
  if new.version_int <> v_existing.latest + 1 then
    raise exception 'the next version of this key is %, not %', v_existing.latest + 1, new.version_int
      using errcode = 'check_violation';
  end if;
  return new;
end
$$;
comment on function private.secure_keys_check_new_version() is 'Trigger: version numbering and identity of new key versions.';
revoke execute on function private.secure_keys_check_new_version() from public, anon, authenticated;

create trigger secure_keys_check_new_version
  before insert on public.secure_keys
  for each row execute function private.secure_keys_check_new_version();

-- Stored versions: only status, grace_until, disabled_at and the wrapping
-- (wrapped_data_key, kek_id, rewrapped_at) change; active -> grace ->
-- disabled, or active -> disabled; disabled is final.
create function private.secure_keys_check_change()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.id <> old.id or new.key_id <> old.key_id or new.tenant_id is distinct from old.tenant_id
     or new.provider <> old.provider or new.label <> old.label or new.version_int <> old.version_int
     or new.ciphertext <> old.ciphertext or new.iv <> old.iv or new.last4 <> old.last4
     or new.is_encrypted <> old.is_encrypted or new.created_at <> old.created_at then
    raise exception 'a stored key version is immutable: only its status and its wrapping change'
      using errcode = 'check_violation';
  end if;
  if old.status = 'disabled' and new.status <> 'disabled' then
    raise exception 'version % of key % is disabled for good', old.version_int, old.key_id
      using errcode = 'check_violation';
  end if;
  if old.status = 'grace' and new.status = 'active' then
    raise exception 'a version in grace cannot become active again: rotate to a new version'
      using errcode = 'check_violation';
  end if;
  if new.status = 'disabled' and old.status <> 'disabled' then
    new.disabled_at := coalesce(new.disabled_at, now());
  end if;
  return new;
end
$$;
comment on function private.secure_keys_check_change() is 'Trigger: stored key versions are immutable but for status and wrapping.';
revoke execute on function private.secure_keys_check_change() from public, anon, authenticated;

create trigger secure_keys_check_change
  before update on public.secure_keys
  for each row execute function private.secure_keys_check_change();

-- One audit row per change of a version: create (version 1), rotate (a new
-- version, or the old one entering grace), disable, rewrap. Decrypts are
-- recorded by public.record_secure_key_decrypt. SECURITY DEFINER: tenant users
-- may not write the audit themselves.
create function private.audit_secure_key_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_action text;
  v_details jsonb;
begin
  if tg_op = 'INSERT' then
    v_action := case when new.version_int = 1 then 'create' else 'rotate' end;
    v_details := pg_catalog.jsonb_build_object('status', new.status, 'kek_id', new.kek_id);
  elsif new.wrapped_data_key <> old.wrapped_data_key or new.kek_id <> old.kek_id then
    v_action := 'rewrap';
    v_details := pg_catalog.jsonb_build_object('from_kek_id', old.kek_id, 'to_kek_id', new.kek_id);
  elsif new.status <> old.status and new.status = 'disabled' then
    v_action := 'disable';
    v_details := pg_catalog.jsonb_build_object(
      'from_status', old.status,
      'reason', nullif(pg_catalog.current_setting('switchyard.disable_reason', true), ''));
  elsif new.status <> old.status or new.grace_until is distinct from old.grace_until then
    v_action := 'rotate';
    v_details := pg_catalog.jsonb_build_object('status', new.status, 'grace_until', new.grace_until);
  else
    return null;
  end if;
  insert into public.secure_keys_audit (key_id, tenant_id, provider, label, version_int, action, actor, request_id, details)
  values (
    new.key_id, new.tenant_id, new.provider, new.label, new.version_int, v_action, private.secure_key_actor(),
    nullif(pg_catalog.left(pg_catalog.current_setting('switchyard.request_id', true), 128), ''),
    pg_catalog.jsonb_strip_nulls(v_details)
  );
  return null;
end
$$;
comment on function private.audit_secure_key_change() is 'Trigger: writes the audit row of every change to a key version.';
revoke execute on function private.audit_secure_key_change() from public, anon, authenticated;

create trigger secure_keys_audit_change
  after insert or update on public.secure_keys
  for each row execute function private.audit_secure_key_change();

-- The key vault's operations. The keys function encrypts (the database never
-- sees a plaintext secret) and calls these; create, rotate and disable run as
-- the caller (SECURITY INVOKER), so RLS decides what a tenant admin may
-- change, and the triggers write the audit. Errors carry a SQLSTATE and, in
-- HINT, the request field at fault, for the function to map:
--   22023 bad value (400), P0002 not found (404), 42501 not allowed (403),
--   23505 exists (409), 40001 rotated meanwhile (409), 55000 refused (409).

-- A new key: version 1, active. The provider must be in the catalog.
create function private.create_secure_key(
  p_key_id uuid,
  p_tenant_id uuid,
  p_provider text,
  p_label text,
  p_ciphertext bytea,
  p_iv bytea,
  p_wrapped_data_key bytea,
  p_kek_id text,
  p_last4 text,
  p_request_id text default null
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_row record;
begin
  if not exists (select 1 from public.llm_providers p where coalesce(p.key_name, p.slug) = p_provider) then
    raise exception 'provider: unknown provider (not in the catalog)' using errcode = 'invalid_parameter_value', hint = 'provider';
  end if;
  perform pg_catalog.set_config('switchyard.request_id', coalesce(p_request_id, ''), true);
  insert into public.secure_keys (key_id, tenant_id, provider, label, version_int, status, ciphertext, iv,
                                  wrapped_data_key, kek_id, last4)
  values (p_key_id, p_tenant_id, p_provider, p_label, 1, 'active', p_ciphertext, p_iv,
          p_wrapped_data_key, p_kek_id, coalesce(p_last4, ''))
  returning key_id, tenant_id, provider, label, version_int, status, last4, kek_id, created_at into v_row;
  return pg_catalog.jsonb_build_object(
    'id', v_row.key_id, 'tenant_id', v_row.tenant_id, 'provider', v_row.provider, 'label', v_row.label,
    'version', v_row.version_int, 'status', v_row.status, 'last4', v_row.last4, 'kek_id', v_row.kek_id,
    'created_at', v_row.created_at);
end
$$;
comment on function private.create_secure_key(uuid, uuid, text, text, bytea, bytea, bytea, text, text, text) is
  'Stores version 1 of a new key (already encrypted by the caller); RLS decides who may.';

-- Roll forward: the caller encrypted the next version (p_version, bound into
-- its additional data); it becomes active and the active one enters grace
-- until now() + p_grace_seconds (0: disabled at once).
create function private.rotate_secure_key(
  p_key_id uuid,
  p_version integer,
  p_ciphertext bytea,
  p_iv bytea,
  p_wrapped_data_key bytea,
  p_kek_id text,
  p_last4 text,
  p_grace_seconds integer,
  p_request_id text default null
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_key record;
  v_previous record;
  v_new record;
begin
  if p_grace_seconds is null or p_grace_seconds not between 0 and 2592000 then
    raise exception 'grace_seconds: must be 0 to 2592000' using errcode = 'invalid_parameter_value', hint = 'grace_seconds';
  end if;
  if not exists (select 1 from public.secure_keys k where k.key_id = p_key_id) then
    raise exception 'key not found' using errcode = 'no_data_found', hint = 'id';
  end if;
  -- Lock every version, so rotations of one key queue; a member who may read
  -- the key but not change it locks nothing.
  perform 1 from public.secure_keys k where k.key_id = p_key_id for update;
  if not found then
    raise exception 'only an admin of this tenant can rotate its keys' using errcode = 'insufficient_privilege';
  end if;
  select k.tenant_id, k.provider, k.label, max(k.version_int) as latest
  into v_key
  from public.secure_keys k
  where k.key_id = p_key_id
  group by k.tenant_id, k.provider, k.label;
  if p_version <> v_key.latest + 1 then
    raise exception 'the key was rotated meanwhile (version % is taken): retry', p_version
      using errcode = 'serialization_failure';
  end if;

  perform pg_catalog.set_config('switchyard.request_id', coalesce(p_request_id, ''), true);
  if p_grace_seconds = 0 then
    perform pg_catalog.set_config('switchyard.disable_reason', 'rotated', true);
    update public.secure_keys k set status = 'disabled', disabled_at = now()
    where k.key_id = p_key_id and k.status = 'active'
    returning k.version_int, k.status, k.grace_until, k.disabled_at into v_previous;
    perform pg_catalog.set_config('switchyard.disable_reason', '', true);
  else
    update public.secure_keys k
    set status = 'grace', grace_until = now() + pg_catalog.make_interval(secs => p_grace_seconds)
    where k.key_id = p_key_id and k.status = 'active'
    returning k.version_int, k.status, k.grace_until, k.disabled_at into v_previous;
  end if;

  insert into public.secure_keys (key_id, tenant_id, provider, label, version_int, status, ciphertext, iv,
                                  wrapped_data_key, kek_id, last4)
  values (p_key_id, v_key.tenant_id, v_key.provider, v_key.label, p_version, 'active', p_ciphertext, p_iv,
          p_wrapped_data_key, p_kek_id, coalesce(p_last4, ''))
  returning key_id, tenant_id, provider, label, version_int, status, last4, kek_id, created_at into v_new;

  return pg_catalog.jsonb_build_object(
    'id', v_new.key_id, 'tenant_id', v_new.tenant_id, 'provider', v_new.provider, 'label', v_new.label,
    'version', v_new.version_int, 'status', v_new.status, 'last4', v_new.last4, 'kek_id', v_new.kek_id,
    'created_at', v_new.created_at,
    'previous', case when v_previous.version_int is null then null else pg_catalog.jsonb_build_object(
      'version', v_previous.version_int, 'status', v_previous.status,
      'grace_until', v_previous.grace_until, 'disabled_at', v_previous.disabled_at) end);
end
$$;
comment on function private.rotate_secure_key(uuid, integer, bytea, bytea, bytea, text, text, integer, text) is
  'Adds the next version as active and puts the active one in grace (or disables it with grace 0).';

-- Emergency revocation: the version is refused from now on. Disabling the
-- active version leaves the key without one, so it needs p_force.
create function private.disable_secure_key_version(
  p_key_id uuid,
  p_version integer,
  p_force boolean default false,
  p_reason text default null,
  p_request_id text default null
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_version record;
  v_disabled record;
begin
  if not exists (select 1 from public.secure_keys k where k.key_id = p_key_id) then
    raise exception 'key not found' using errcode = 'no_data_found', hint = 'id';
  end if;
  select k.id, k.status, k.disabled_at into v_version
  from public.secure_keys k
  where k.key_id = p_key_id and k.version_int = p_version;
  if not found then
    raise exception 'version % of this key does not exist', p_version using errcode = 'no_data_found', hint = 'version';
  end if;
  perform 1 from public.secure_keys k where k.id = v_version.id for update;
  if not found then
    raise exception 'only an admin of this tenant can disable its key versions' using errcode = 'insufficient_privilege';
  end if;
  -- Re-read under the lock: a rotation may have moved it on meanwhile.
  select k.id, k.status, k.disabled_at into v_version from public.secure_keys k where k.id = v_version.id;
  if v_version.status = 'disabled' then
    return pg_catalog.jsonb_build_object('id', p_key_id, 'version', p_version, 'status', 'disabled',
      'disabled_at', v_version.disabled_at, 'previous_status', 'disabled', 'already_disabled', true);
  end if;
  if v_version.status = 'active' and not coalesce(p_force, false) then
    raise exception 'version % is the only active version of this key: rotate to a replacement first, or pass force: true', p_version
      using errcode = 'object_not_in_prerequisite_state', hint = 'force';
  end if;

  perform pg_catalog.set_config('switchyard.request_id', coalesce(p_request_id, ''), true);
  perform pg_catalog.set_config('switchyard.disable_reason',
    coalesce(nullif(pg_catalog.left(p_reason, 200), ''), case when v_version.status = 'active' then 'forced' else 'revoked' end), true);
  update public.secure_keys k set status = 'disabled', disabled_at = now()
  where k.id = v_version.id
  returning k.disabled_at into v_disabled;
  perform pg_catalog.set_config('switchyard.disable_reason', '', true);
  return pg_catalog.jsonb_build_object('id', p_key_id, 'version', p_version, 'status', 'disabled',
    'disabled_at', v_disabled.disabled_at, 'previous_status', v_version.status, 'already_disabled', false);
end
$$;
comment on function private.disable_secure_key_version(uuid, integer, boolean, text, text) is
  'Disables one version at once (the active one only with p_force); audited.';

revoke execute on function private.create_secure_key(uuid, uuid, text, text, bytea, bytea, bytea, text, text, text) from public, anon;
revoke execute on function private.rotate_secure_key(uuid, integer, bytea, bytea, bytea, text, text, integer, text) from public, anon;
revoke execute on function private.disable_secure_key_version(uuid, integer, boolean, text, text) from public, anon;
grant execute on function private.create_secure_key(uuid, uuid, text, text, bytea, bytea, bytea, text, text, text) to authenticated, service_role;
grant execute on function private.rotate_secure_key(uuid, integer, bytea, bytea, bytea, text, text, integer, text) to authenticated, service_role;
grant execute on function private.disable_secure_key_version(uuid, integer, boolean, text, text) to authenticated, service_role;

-- Grace expiry: versions whose grace_until has passed become disabled, as of
-- grace_until. Readers already treat them as disabled; this makes it so in
-- the rows and the audit. Called lazily by the key resolver and by the
-- maintenance worker (or pg_cron). Answers how many versions it disabled.
create function public.disable_expired_key_versions()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_count integer;
  v_actor text := pg_catalog.current_setting('switchyard.actor', true);
  v_reason text := pg_catalog.current_setting('switchyard.disable_reason', true);
begin
  perform pg_catalog.set_config('switchyard.actor', 'system:grace-expiry', true);
  perform pg_catalog.set_config('switchyard.disable_reason', 'grace_expired', true);
  update public.secure_keys k
  set status = 'disabled', disabled_at = k.grace_until
  where k.status = 'grace' and k.grace_until <= now();
  get diagnostics v_count = row_count;
  perform pg_catalog.set_config('switchyard.actor', coalesce(v_actor, ''), true);
  perform pg_catalog.set_config('switchyard.disable_reason', coalesce(v_reason, ''), true);
  return v_count;
end
$$;
comment on function public.disable_expired_key_versions() is
  'Disables key versions whose grace period is over; returns how many. For the resolver and the maintenance worker.';

-- The audit row of one decrypt (the resolver calls it after decrypting, not on cache hits).
create function public.record_secure_key_decrypt(p_secure_key_id uuid, p_actor text, p_request_id text default null)
returns void
language plpgsql
set search_path = ''
as $$
begin
  insert into public.secure_keys_audit (key_id, tenant_id, provider, label, version_int, action, actor, request_id, details)
  select k.key_id, k.tenant_id, k.provider, k.label, k.version_int, 'decrypt', pg_catalog.left(p_actor, 200),
         nullif(pg_catalog.left(p_request_id, 128), ''), pg_catalog.jsonb_build_object('kek_id', k.kek_id)
  from public.secure_keys k
  where k.id = p_secure_key_id;
  if not found then
    raise exception 'key version % not found', p_secure_key_id using errcode = 'no_data_found';
  end if;
end
$$;
comment on function public.record_secure_key_decrypt(uuid, text, text) is 'Audits one decrypt of a key version.';

revoke execute on function public.disable_expired_key_versions() from public, anon, authenticated;
revoke execute on function public.record_secure_key_decrypt(uuid, text, text) from public, anon, authenticated;
grant execute on function public.disable_expired_key_versions() to service_role;
grant execute on function public.record_secure_key_decrypt(uuid, text, text) to service_role;
