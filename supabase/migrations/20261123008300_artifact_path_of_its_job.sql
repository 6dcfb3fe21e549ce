-- An artifact in Storage lives under its own job's prefix,
-- <tenant id or 'system'>/<job id>/ (migration 20261123006500 and
-- storage.ts's artifactObjectPath). GET /jobs/:id/artifacts signs the stored
-- path with the service key for whoever may see the job, so a path a handler
-- registered outside that prefix (add_job_artifact took any text) would hand a
-- tenant a URL to another tenant's object. The rule is a CHECK, so no writer
-- can bypass it. NOT VALID: rows written before this migration are not
-- rewritten or rechecked; every new or changed row is.
alter table public.artifacts
  add constraint artifacts_storage_path_of_its_job
    check (storage_path is null
      or (starts_with(storage_path, coalesce(tenant_id::text, 'system') || '/' || job_id::text || '/')
        and storage_path !~ '(^|/)\.\.?(/|$)'))
    not valid;
comment on constraint artifacts_storage_path_of_its_job on public.artifacts is
  'A Storage artifact''s path starts with <tenant id or system>/<job id>/ and has no . or .. segment.';
