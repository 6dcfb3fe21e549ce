-- Feedback on requests that ran under a budget lease (migration
-- 20261123008000): they have no reservation of their own, so their domain tag
-- is on the usage record. record_feedback takes it from there first, else from
-- the reservation as before; the rest is as migration 20261123005100 left it.
create or replace function public.record_feedback(
  p_tenant_id uuid,
  p_request_id text,
  p_source text,
  p_api_key_id uuid,
  p_user_id uuid,
  p_score real,
  p_tags text[] default '{}',
  p_comment text default null
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_usage record;
  v_row public.request_feedback;
begin
  if p_score is null or p_score < 0 or p_score > 1 then
    raise exception 'score must be between 0 and 1' using errcode = 'invalid_parameter_value';
  end if;
  select u.provider, u.upstream_model, coalesce(u.domain, r.domain, '') as domain
    into v_usage
  from public.usage_records u
  left join public.budget_reservations r on r.request_id = u.request_id
  where u.request_id = p_request_id and u.tenant_id = p_tenant_id;
  if not found then
    return pg_catalog.jsonb_build_object('status', 'unknown_request');
  end if;

  insert into public.request_feedback as f (
    tenant_id, request_id, source, api_key_id, user_id, score, tags, comment, provider_id, upstream_model, domain)
  values (p_tenant_id, p_request_id, p_source, p_api_key_id, p_user_id, p_score, coalesce(p_tags, '{}'), p_comment,
          (select p.id from public.llm_providers p where p.slug = v_usage.provider), v_usage.upstream_model,
          v_usage.domain)
  on conflict on constraint request_feedback_once_per_source do nothing
  returning f.* into v_row;
  if v_row.id is not null then
    return pg_catalog.jsonb_build_object('status', 'created', 'feedback', pg_catalog.to_jsonb(v_row));
  end if;

  select f.* into v_row from public.request_feedback f where f.request_id = p_request_id and f.source = p_source;
  return pg_catalog.jsonb_build_object(
    'status', case when v_row.score = p_score and v_row.tags = coalesce(p_tags, '{}')
                        and v_row.comment is not distinct from p_comment then 'existing' else 'conflict' end,
    'feedback', pg_catalog.to_jsonb(v_row));
end
$$;
