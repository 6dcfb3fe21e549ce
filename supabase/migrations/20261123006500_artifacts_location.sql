-- Where an artifact's bytes live, and what they are. An artifact is either
-- inline (`content`, JSON in this table) or an object in the private Storage
-- bucket `artifacts` (`storage_path`, `<tenant_id>/<job_id>/<file>`); the
-- CHECK artifacts_one_location (jobs tables migration) keeps exactly one of
-- them set. Added here: the size in bytes and the content type of the
-- output, and why an output above the inline limit was kept inline anyway
-- (`inline_reason = 'storage_not_configured'`: no Storage where the worker
-- ran, so nothing is lost). add_job_artifact takes the new fields.

alter table public.artifacts
  add column size_bytes bigint,
  add column content_type text not null default 'application/json',
  add column inline_reason text;

comment on column public.artifacts.size_bytes is 'Bytes of the output (inline: its JSON text; storage: the uploaded object); null only for a Storage path registered without its size.';
comment on column public.artifacts.content_type is 'MIME type of the output: application/json for JSON content, else what the worker said (text/csv, ...).';
comment on column public.artifacts.inline_reason is 'Why an output above the inline limit stayed inline (storage_not_configured); null otherwise.';

-- Rows written before this migration: inline sizes are known from the content.
update public.artifacts set size_bytes = octet_length(content::text) where content is not null and size_bytes is null;

-- Artifacts is a small table that only add_job_artifact writes; these checks
-- scan it once inside the migration's transaction, where NOT VALID would gain nothing.
-- squawk-ignore-file constraint-missing-not-valid
alter table public.artifacts
  add constraint artifacts_size_non_negative check (size_bytes >= 0),
  add constraint artifacts_inline_size_known check (content is null or size_bytes is not null),
  add constraint artifacts_content_type_valid
    check (content_type ~* '^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}(;[ -~]{1,200})?$'),
  add constraint artifacts_inline_reason_valid
    check (inline_reason is null or (inline_reason = 'storage_not_configured' and content is not null));

-- The same function with the new fields as optional trailing parameters, so
-- existing callers (positional or named) keep working.
drop function public.add_job_artifact(uuid, uuid, text, jsonb, text);

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
grant execute on function public.add_job_artifact(uuid, uuid, text, jsonb, text, bigint, text, text) to service_role;
