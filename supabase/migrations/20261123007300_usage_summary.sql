-- Usage totals that survive retention (issue 11). GET /ops/usage summed
-- usage_records only, so once retention purged a rolled-up day its usage
-- vanished from the report. usage_summary takes each rolled-up day that lies
-- wholly inside the range from usage_daily (exact, whether or not its records
-- are still there) and everything else from usage_records; a rolled-up day
-- only partly inside the range is counted from the records it still has.
-- Grouping is by any of provider, model, key and upstream_model (the others
-- come back null). Security invoker: RLS decides what a member sees.
create function public.usage_summary(p_tenant_id uuid, p_from timestamptz, p_to timestamptz, p_group_by text[])
returns table (
  provider text,
  model text,
  key text,
  upstream_model text,
  requests bigint,
  prompt_tokens bigint,
  completion_tokens bigint,
  cost_usd_micros bigint,
  cache_hits bigint
)
language sql
stable
set search_path = ''
as $$
  with whole_days as (
    select r.day
    from public.usage_rollups r
    where r.tenant_id = p_tenant_id
      and (r.day::timestamp at time zone 'UTC') >= coalesce(p_from, '-infinity')
      and ((r.day + 1)::timestamp at time zone 'UTC') <= coalesce(p_to, 'infinity')
  ),
  usage as (
    select u.provider, u.model_alias, u.api_key_id, u.upstream_model, 1::bigint as requests,
           u.prompt_tokens::bigint as prompt_tokens, u.completion_tokens::bigint as completion_tokens,
           u.cost_usd_micros, (case when u.cache_hit then 1 else 0 end)::bigint as cache_hits
    from public.usage_records u
    where u.tenant_id = p_tenant_id
      and u.created_at >= coalesce(p_from, '-infinity') and u.created_at < coalesce(p_to, 'infinity')
      and (u.created_at at time zone 'UTC')::date not in (select w.day from whole_days w)
    union all
    select d.provider, d.model_alias, d.api_key_id, d.upstream_model, d.requests, d.prompt_tokens,
           d.completion_tokens, d.cost_usd_micros, case when d.cache_hit then d.requests else 0 end
    from public.usage_daily d
    where d.tenant_id = p_tenant_id and d.day in (select w.day from whole_days w)
  )
  select case when 'provider' = any (p_group_by) then g.provider end,
         case when 'model' = any (p_group_by) then g.model_alias end,
         case when 'key' = any (p_group_by) then g.api_key_id::text end,
         case when 'upstream_model' = any (p_group_by) then g.upstream_model end,
         sum(g.requests)::bigint, sum(g.prompt_tokens)::bigint, sum(g.completion_tokens)::bigint,
         sum(g.cost_usd_micros)::bigint, sum(g.cache_hits)::bigint
  from usage g
  group by 1, 2, 3, 4
  order by 1, 2, 3, 4
$$;
comment on function public.usage_summary(uuid, timestamptz, timestamptz, text[]) is
  'A tenant''s usage totals in [from, to), grouped by any of provider, model, key, upstream_model: rolled-up days wholly inside the range from usage_daily, the rest from usage_records.';
revoke execute on function public.usage_summary(uuid, timestamptz, timestamptz, text[]) from public, anon;
grant execute on function public.usage_summary(uuid, timestamptz, timestamptz, text[]) to authenticated, service_role;
