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
