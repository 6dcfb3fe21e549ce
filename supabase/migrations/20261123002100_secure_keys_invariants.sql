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
