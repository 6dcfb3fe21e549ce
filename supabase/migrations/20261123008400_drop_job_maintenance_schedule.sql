-- private.schedule_job_maintenance() (migration 20261123001400) put only the
-- job reaper on pg_cron, as 'switchyard-reap-expired-jobs'. Since
-- 20261123006100, private.schedule_maintenance() schedules every row of
-- public.schedules (the reaper included, recorded in scheduled_runs) and
-- unschedules that old job; running the old function again, as its comment
-- still told operators, brought the unrecorded second reaper back.
drop function private.schedule_job_maintenance();
