-- Artifacts: the outputs of jobs. An artifact is either inline (`content`,
-- JSON in this table) or an object in the private Storage bucket `artifacts`
-- (`storage_path`, `<tenant id or 'system'>/<job id>/<file>`, the prefix
-- storage.ts's artifactObjectPath builds); artifacts_one_location keeps
-- exactly one of them set. Each records its size in bytes and content type,
-- and why an output above the inline limit was kept inline anyway
-- (`inline_reason = 'storage_not_configured'`: no Storage where the worker
-- ran, so nothing is lost). Only add_job_artifact, by the worker holding the
-- job's lease, writes them.

create table public.artifacts (
  id uuid primary key default gen_random_uuid(),
  job_id uuid not null references public.jobs (id),
  tenant_id uuid references public.tenants (id),
  name text not null default 'output' check (length(name) between 1 and 200),
  -- Either a path in Storage or the output inline.
  storage_path text check (length(storage_path) between 1 and 1024),
  content jsonb,
  created_at timestamptz not null default now(),
  size_bytes bigint,
  content_type text not null default 'application/json',
  inline_reason text,
  constraint artifacts_one_location check ((storage_path is null) <> (content is null)),
  constraint artifacts_size_non_negative check (size_bytes >= 0),
  constraint artifacts_inline_size_known check (content is null or size_bytes is not null),
  constraint artifacts_content_type_valid
    check (content_type ~* '^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}(;[ -~]{1,200})?$'),
  constraint artifacts_inline_reason_valid
    check (inline_reason is null or (inline_reason = 'storage_not_configured' and content is not null)),
  -- GET /jobs/:id/artifacts signs the stored path with the service key for
  -- whoever may see the job, so a path outside the job's own prefix would hand
  -- a tenant a URL to another tenant's object. A CHECK: no writer can bypass it.
  constraint artifacts_storage_path_of_its_job
    check (storage_path is null
      or (starts_with(storage_path, coalesce(tenant_id::text, 'system') || '/' || job_id::text || '/')
        and storage_path !~ '(^|/)\.\.?(/|$)'))
);
comment on table public.artifacts is 'Outputs of jobs: a Storage path or inline JSON, owned by the job''s tenant.';
comment on column public.artifacts.size_bytes is 'Bytes of the output (inline: its JSON text; storage: the uploaded object); null only for a Storage path registered without its size.';
comment on column public.artifacts.content_type is 'MIME type of the output: application/json for JSON content, else what the worker said (text/csv, ...).';
comment on column public.artifacts.inline_reason is 'Why an output above the inline limit stayed inline (storage_not_configured); null otherwise.';
comment on constraint artifacts_storage_path_of_its_job on public.artifacts is
  'A Storage artifact''s path starts with <tenant id or system>/<job id>/ and has no . or .. segment.';
create index artifacts_job_id_idx on public.artifacts (job_id);
create index artifacts_tenant_id_created_at_idx on public.artifacts (tenant_id, created_at desc);

alter table public.artifacts enable row level security;
-- Supabase grants everything on new public tables: take it back, then grant reads only.
revoke all on table public.artifacts from anon, authenticated, service_role;
grant select on table public.artifacts to authenticated, service_role;

create policy "Members can read their tenant's artifacts"
  on public.artifacts for select to authenticated
  using (tenant_id in (select private.tenant_ids_of_current_user()));

-- Records an output of a job, by the worker holding its lease: a Storage
-- object path or inline JSON, with its size (computed for inline JSON), content
-- type and why it stayed inline.
create function public.add_job_artifact(
  job_id uuid,
  lease_token uuid,
  storage_path text default null,
  content jsonb default null,
  name text default 'output',
  size_bytes bigint default null,
  content_type text default null,
  inline_reason text default null
)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_tenant_id uuid;
  v_id uuid;
begin
  select j.tenant_id into v_tenant_id
  from public.jobs j
  where j.id = add_job_artifact.job_id and j.status = 'assigned' and j.lease_token = add_job_artifact.lease_token
  for share;
  if not found then
    perform private.raise_job_lease_error(add_job_artifact.job_id, add_job_artifact.lease_token, 'add an artifact to');
  end if;
  insert into public.artifacts (job_id, tenant_id, name, storage_path, content, size_bytes, content_type, inline_reason)
  values (
    add_job_artifact.job_id, v_tenant_id, coalesce(add_job_artifact.name, 'output'), add_job_artifact.storage_path,
    add_job_artifact.content,
    coalesce(add_job_artifact.size_bytes, octet_length(add_job_artifact.content::text)),
    coalesce(add_job_artifact.content_type, 'application/json'),
    add_job_artifact.inline_reason
  )
  returning id into v_id;
  return v_id;
end
$$;
comment on function public.add_job_artifact(uuid, uuid, text, jsonb, text, bigint, text, text) is 'Stores an output of a job (a Storage object path or inline JSON, with size, content type and why it stayed inline), by the worker holding its lease.';

revoke execute on function public.add_job_artifact(uuid, uuid, text, jsonb, text, bigint, text, text)
  from public, anon, authenticated;

-- The private Storage bucket `artifacts` for job outputs above the inline
-- limit, where the `storage` schema exists (Supabase). Objects are named
-- `<tenant_id>/<job_id>/<file>`: only the service role (the job worker,
-- which bypasses RLS) writes them, and a signed-in member of a tenant may
-- read its own tenant's objects; anon nothing. The functions hand out
-- short-lived signed URLs (GET /jobs/:id/artifacts), so clients need no
-- Storage policy at all; the read policy is for direct Storage API use.
--
-- Without the storage schema (the local stack, a plain PostgreSQL) the
-- migration creates no bucket and says so; artifacts stay inline there.
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
