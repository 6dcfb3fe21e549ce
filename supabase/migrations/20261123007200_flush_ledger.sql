-- One round trip for the router's ledger: the settlements, releases and
-- reservations that queued up while the previous flush was in flight go in one
-- transaction (issue 9). Separately, a reserve batch and a settle batch each
-- paid a call, a lock on the tenant's counter row (each waiting for the other)
-- and a commit; together they pay each once. Settlements and releases go
-- first: they free room the reservations may need. The commit is durable when
-- the flush settles anything (an answer waits for its usage record), and
-- asynchronous otherwise (see reserve_budgets, migration 20261123007100).
create function public.flush_ledger(p_reservations jsonb, p_settlements jsonb, p_releases jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_settled jsonb := '[]'::jsonb;
  v_released jsonb := '[]'::jsonb;
  v_reserved jsonb := '[]'::jsonb;
begin
  if pg_catalog.jsonb_typeof(p_reservations) <> 'array' or pg_catalog.jsonb_typeof(p_settlements) <> 'array'
     or pg_catalog.jsonb_typeof(p_releases) <> 'array' then
    raise exception 'flush_ledger takes three JSON arrays' using errcode = 'invalid_parameter_value';
  end if;
  if pg_catalog.jsonb_array_length(p_settlements) > 0 then
    v_settled := public.settle_budgets(p_settlements);
  end if;
  if pg_catalog.jsonb_array_length(p_releases) > 0 then
    v_released := public.release_budgets(p_releases);
  end if;
  if pg_catalog.jsonb_array_length(p_reservations) > 0 then
    v_reserved := public.reserve_budgets(p_reservations);
  end if;
  perform pg_catalog.set_config('synchronous_commit',
    case when pg_catalog.jsonb_array_length(p_settlements) > 0 then 'on' else 'off' end, true);
  return pg_catalog.jsonb_build_object('reserved', v_reserved, 'settled', v_settled, 'released', v_released);
end
$$;
comment on function public.flush_ledger(jsonb, jsonb, jsonb) is
  'Settles, releases, then reserves, in one transaction: answers per kind in input order; durable commit when anything was settled.';
revoke execute on function public.flush_ledger(jsonb, jsonb, jsonb) from public, anon, authenticated;
grant execute on function public.flush_ledger(jsonb, jsonb, jsonb) to service_role;
