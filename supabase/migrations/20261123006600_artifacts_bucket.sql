-- The private Storage bucket `artifacts` for job outputs above the inline
-- limit, where the `storage` schema exists (Supabase). Objects are named
-- `<tenant_id>/<job_id>/<file>`: only the service role (the job worker,
-- which bypasses RLS) writes them, and a signed-in member of a tenant may
-- read its own tenant's objects; anon nothing. The functions hand out
-- short-lived signed URLs (GET /jobs/:id/artifacts), so clients need no
-- Storage policy at all; the read policy is for direct Storage API use.
--
-- Without the storage schema (the local stack, a plain PostgreSQL) this
-- migration changes nothing and says so; artifacts stay inline there.
-- Enabling Storage later: `select private.install_artifacts_bucket();`
-- (idempotent).

create function private.install_artifacts_bucket()
returns boolean
language plpgsql
set search_path = ''
as $$
begin
  if to_regclass('storage.buckets') is null or to_regclass('storage.objects') is null then
    return false;
  end if;
  -- Dynamic SQL: the storage tables do not exist where this function is created.
  execute $sql$
    insert into storage.buckets (id, name, public) values ('artifacts', 'artifacts', false)
    on conflict (id) do update set public = false
  $sql$;

  -- Restrictive policies cap whatever permissive policies other buckets add:
  -- no role under RLS writes into `artifacts`, anon reads nothing from it,
  -- and a signed-in user reads only objects under one of its tenants.
  execute 'drop policy if exists "Artifacts: only the service role inserts" on storage.objects';
  execute $sql$
    create policy "Artifacts: only the service role inserts" on storage.objects
      as restrictive for insert to public
      with check (bucket_id <> 'artifacts')
  $sql$;
  execute 'drop policy if exists "Artifacts: only the service role updates" on storage.objects';
  execute $sql$
    create policy "Artifacts: only the service role updates" on storage.objects
      as restrictive for update to public
      using (bucket_id <> 'artifacts')
      with check (bucket_id <> 'artifacts')
  $sql$;
  execute 'drop policy if exists "Artifacts: only the service role deletes" on storage.objects';
  execute $sql$
    create policy "Artifacts: only the service role deletes" on storage.objects
      as restrictive for delete to public
      using (bucket_id <> 'artifacts')
  $sql$;
  execute 'drop policy if exists "Artifacts: anon reads none" on storage.objects';
  execute $sql$
    create policy "Artifacts: anon reads none" on storage.objects
      as restrictive for select to anon
      using (bucket_id <> 'artifacts')
  $sql$;
  execute 'drop policy if exists "Artifacts: users read only their tenants'' objects" on storage.objects';
  execute $sql$
    create policy "Artifacts: users read only their tenants' objects" on storage.objects
      as restrictive for select to authenticated
      using (
        bucket_id <> 'artifacts'
        or pg_catalog.split_part(name, '/', 1) in (select t::text from private.tenant_ids_of_current_user() as t)
      )
  $sql$;
  execute 'drop policy if exists "Artifacts: members read their tenant''s objects" on storage.objects';
  execute $sql$
    create policy "Artifacts: members read their tenant's objects" on storage.objects
      for select to authenticated
      using (
        bucket_id = 'artifacts'
        and pg_catalog.split_part(name, '/', 1) in (select t::text from private.tenant_ids_of_current_user() as t)
      )
  $sql$;
  return true;
end
$$;
comment on function private.install_artifacts_bucket() is 'Creates the private Storage bucket artifacts and its policies on storage.objects where the storage schema exists; false (and nothing) otherwise. Idempotent.';
revoke execute on function private.install_artifacts_bucket() from public, anon, authenticated, service_role;

do $$
begin
  if private.install_artifacts_bucket() then
    raise notice 'storage: private bucket "artifacts" and its policies are in place';
  else
    raise notice 'storage schema not found: no artifacts bucket; job artifacts stay inline (STORAGE_ENABLED unset)';
  end if;
end
$$;
