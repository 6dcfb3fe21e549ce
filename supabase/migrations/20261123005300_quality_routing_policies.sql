-- Reputation-aware routing settings on routing policies: strategy 'quality'
-- (candidates by reputation, cost as the tiebreak), a min_reputation guard
-- any strategy can use (a model scoring below it is skipped while an
-- alternative exists), and the share of traffic that explores other
-- candidates so their scores can recover. The first entry of ab_buckets is the
-- control bucket: a bucket whose budget cap is spent falls back to it.

-- routing_policies is small and operator-managed; the validating scan is instant.
alter table public.routing_policies drop constraint routing_policies_strategy_check,
  -- squawk-ignore constraint-missing-not-valid
  add constraint routing_policies_strategy_check
  check (strategy in ('priority', 'cost', 'latency', 'weighted', 'quality'));
alter table public.routing_policies
  add column min_reputation real check (min_reputation between 0 and 1),
  add column exploration_share real not null default 0.05 check (exploration_share between 0 and 1);
comment on column public.routing_policies.min_reputation is 'Models scoring below this reputation are skipped while another candidate exists; null = no guard.';
comment on column public.routing_policies.exploration_share is 'Share of requests (0..1) sent first to another candidate than the best one, so its reputation can recover.';
