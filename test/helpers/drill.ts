/**
 * The drill's answer when it cannot run here: the embedded server is
 * PostgreSQL 17 and no pg_dump 17 ships with it (Debian's client is 15), or
 * pg_dump is missing. Any other failure is a real one.
 */
export const drillVersionGap = /^pg_dump \d+ cannot dump a PostgreSQL \d+ server|^pg_dump is not installed/;
