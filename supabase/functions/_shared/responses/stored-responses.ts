// Stored Responses (OpenAI's `store`): each answered turn per tenant, its
// input items and the Response object, until expires_at. A turn names the one
// it continued (previous_response_id), so a conversation is a chain of rows,
// stored once each, walked back when a later request continues it.
import type { Database } from '../db.ts';
import { HttpError } from '../errors.ts';
import { parseStoredItems, type ResponseItem } from '../openai/responses-schemas.ts';

/** How long a stored response is kept (OpenAI keeps them 30 days). */
export const STORED_RESPONSE_TTL_DAYS = 30;
/** The longest conversation previous_response_id walks back. */
const MAX_CHAIN = 1000;

export interface StoredTurn {
  tenantId: string;
  id: string;
  previousResponseId: string | null;
  requestId: string;
  modelAlias: string;
  /** This turn's input items (not those of earlier turns). */
  input: ResponseItem[];
  /** The Response object as the client received it. */
  response: Record<string, unknown>;
}

/** The same answer whether the id never existed, expired, was deleted, or is another tenant's. */
export function responseNotFound(id: string, param: string | null = null): HttpError {
  return new HttpError('not_found', `Response with id '${id}' not found.`, { param });
}

export async function storeResponse(db: Database, turn: StoredTurn): Promise<void> {
  await db`
    insert into public.stored_responses
      (tenant_id, id, previous_response_id, request_id, model_alias, input, response, expires_at)
    values (${turn.tenantId}, ${turn.id}, ${turn.previousResponseId}, ${turn.requestId}, ${turn.modelAlias},
            ${db.json(asJson(turn.input))}, ${db.json(asJson(turn.response))},
            now() + make_interval(days => ${STORED_RESPONSE_TTL_DAYS}))
    on conflict (tenant_id, id) do nothing`;
}

function asJson(value: unknown): Parameters<Database['json']>[0] {
  return JSON.parse(JSON.stringify(value));
}

export async function findStoredResponse(
  db: Database,
  tenantId: string,
  id: string,
): Promise<Record<string, unknown> | undefined> {
  const [row] = await db<{ response: Record<string, unknown> }[]>`
    select response from public.stored_responses
    where tenant_id = ${tenantId} and id = ${id} and expires_at > now()`;
  return row?.response;
}

export async function deleteStoredResponse(db: Database, tenantId: string, id: string): Promise<boolean> {
  const rows = await db`
    delete from public.stored_responses
    where tenant_id = ${tenantId} and id = ${id} and expires_at > now()
    returning 1`;
  return rows.length === 1;
}

/**
 * The conversation `id` ends, oldest first: each turn's input items, then its
 * output items. A 404 when it is not this tenant's, or when a turn of it is
 * no longer stored (expired or deleted): continuing without it would answer
 * a conversation the client never had.
 */
export async function storedConversation(db: Database, tenantId: string, id: string): Promise<ResponseItem[]> {
  const rows = await db<{ previous_response_id: string | null; input: unknown; output: unknown }[]>`
    with recursive chain as (
      select s.id, s.previous_response_id, s.input, s.response -> 'output' as output, 0 as depth
      from public.stored_responses s
      where s.tenant_id = ${tenantId} and s.id = ${id} and s.expires_at > now()
      union all
      select s.id, s.previous_response_id, s.input, s.response -> 'output', c.depth + 1
      from chain c
      join public.stored_responses s
        on s.tenant_id = ${tenantId} and s.id = c.previous_response_id and s.expires_at > now()
      where c.depth < ${MAX_CHAIN}
    )
    select previous_response_id, input, output from chain order by depth desc`;
  if (rows.length === 0 || rows[0].previous_response_id !== null) {
    throw responseNotFound(id, 'previous_response_id');
  }
  return rows.flatMap((row) => [...parseStoredItems(row.input), ...parseStoredItems(row.output)]);
}
