-- private.applicable_budgets served the first, per-request saga; the set-based
-- batch functions (20261123004200) select their budgets themselves, so nothing
-- calls it any more.
drop function private.applicable_budgets(uuid, uuid, text);
