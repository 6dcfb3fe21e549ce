-- The job state machine: the transition table is the whole list, every other
-- status change raises (whichever operation attempts it), and the allowed
-- ones pass only for their own operation.
begin;
select plan(11);

select results_eq(
  $$select coalesce(from_status, '(new)'), to_status, operation, event from private.job_transitions
    order by coalesce(from_status, ''), to_status, operation$$,
  $$values ('(new)', 'queued', 'enqueue', 'queued'),
           ('assigned', 'cancelled', 'skip', 'cancelled'),
           ('assigned', 'failed_dlq', 'fail', 'failed_dlq'),
           ('assigned', 'failed_dlq', 'reap', 'failed_dlq'),
           ('assigned', 'retry_scheduled', 'fail', 'retry_scheduled'),
           ('assigned', 'retry_scheduled', 'reap', 'retry_scheduled'),
           ('assigned', 'succeeded', 'complete', 'succeeded'),
           ('failed_dlq', 'queued', 'requeue', 'requeued'),
           ('queued', 'assigned', 'claim', 'assigned'),
           ('queued', 'cancelled', 'cancel', 'cancelled'),
           ('retry_scheduled', 'assigned', 'claim', 'assigned'),
           ('retry_scheduled', 'cancelled', 'cancel', 'cancelled')$$,
  'the transition table lists exactly the allowed transitions and the operation making each');

select public.register_job_kind('test.state', 'state machine probe', 3, 60);

-- Tries every change between two different statuses under every operation
-- (and none): a job is put in `from` with triggers off, then updated to `to`
-- with the trigger on. Reports what happened to each attempt.
create function tests.job_transition_attempts()
returns table (from_status text, to_status text, operation text, allowed boolean, outcome text)
language plpgsql
as $$
declare
  v_statuses text[] := array['queued', 'assigned', 'succeeded', 'retry_scheduled', 'failed_dlq', 'cancelled'];
  v_operations text[] := array['', 'enqueue', 'claim', 'complete', 'fail', 'reap', 'skip', 'cancel', 'requeue'];
  v_id uuid;
begin
  foreach from_status in array v_statuses loop
    foreach to_status in array v_statuses loop
      continue when from_status = to_status;
      foreach operation in array v_operations loop
        allowed := exists (select 1 from private.job_transitions t
                           where t.from_status = job_transition_attempts.from_status
                             and t.to_status = job_transition_attempts.to_status
                             and t.operation = job_transition_attempts.operation);
        begin
          perform set_config('session_replication_role', 'replica', true);
          insert into public.jobs (kind, status, attempts, max_attempts, timeout_seconds, lease_token, lease_expires_at)
          values ('test.state', from_status, 1, 3, 60,
                  case when from_status = 'assigned' then gen_random_uuid() end,
                  case when from_status = 'assigned' then now() + interval '1 minute' end)
          returning id into v_id;
          perform set_config('session_replication_role', 'origin', true);
          perform set_config('switchyard.job_operation', operation, true);
          update public.jobs
          set status = job_transition_attempts.to_status,
              lease_token = case when job_transition_attempts.to_status = 'assigned' then gen_random_uuid() end,
              lease_expires_at = case when job_transition_attempts.to_status = 'assigned' then now() + interval '1 minute' end
          where id = v_id;
          -- Undo an accepted change too: every attempt starts from scratch.
          raise exception using errcode = 'SYT00';
        exception
          when sqlstate 'SYT00' then outcome := 'changed';
          when others then outcome := sqlstate || ' ' || sqlerrm;
        end;
        perform set_config('session_replication_role', 'origin', true);
        perform set_config('switchyard.job_operation', '', true);
        return next;
      end loop;
    end loop;
  end loop;
end
$$;

create temporary table attempts as select * from tests.job_transition_attempts();

select is((select count(*)::int from attempts), 270,
  'every ordered pair of different statuses was tried under each of 8 operations and none (30 x 9)');
select is_empty($$select from_status, to_status, operation from attempts where not allowed and outcome !~ '^SYJ01 '$$,
  'every illegal transition raises SYJ01 (none slips through, none fails for another reason)');
select is_empty($$select from_status, to_status, operation, outcome from attempts where allowed and outcome <> 'changed'$$,
  'each allowed transition goes through for its own operation');
select is((select count(*)::int from attempts where outcome = 'changed'), 11,
  'exactly the 11 status-changing rows of the table can change a job');
select is_empty($$select 1 from attempts where from_status = 'succeeded' and outcome = 'changed'$$,
  'succeeded is final');
select is_empty($$select 1 from attempts where to_status = 'succeeded' and operation <> 'complete' and outcome = 'changed'$$,
  'nothing but complete reaches succeeded');

-- Messages, for a person reading the error.
select public.enqueue_job('test.state', '{}') as queued_job \gset
select throws_like(
  format($$update public.jobs set status = 'succeeded' where id = %L$$, :'queued_job'),
  'illegal job transition queued -> succeeded (job %)',
  'a direct illegal change names both statuses and the job');
select * from public.claim_jobs('state-worker', array['test.state'], 1, 60);
select throws_like(
  format($$update public.jobs set status = 'succeeded', lease_token = null, lease_expires_at = null where id = %L$$, :'queued_job'),
  'job transition assigned -> succeeded (job %) is made only by the job function(s) for: complete',
  'an allowed transition made outside its function is refused, naming the function');
select throws_like(
  $$insert into public.jobs (kind, max_attempts, timeout_seconds) values ('test.state', 1, 1)$$,
  'illegal job transition: job % cannot be created as queued (jobs are created queued, by enqueue_job)',
  'jobs are created only by enqueue_job');
select throws_ok(
  format($$update public.jobs set id = gen_random_uuid() where id = %L$$, :'queued_job'),
  '23503', 'update or delete on table "jobs" violates foreign key constraint "job_events_job_id_fkey" on table "job_events"', 'a job''s id cannot change: its events reference it');

select * from finish();
rollback;
