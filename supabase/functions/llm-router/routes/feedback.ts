import { Hono } from 'hono';
import { z } from 'zod';
import { HttpError } from '../../_shared/errors.ts';
import type { AppEnv } from '../../_shared/hono-env.ts';
import { validationError } from '../../_shared/validation.ts';
import { requestTenant, type RouterServices } from '../services.ts';
import { jsonBodyOf } from '../../_shared/validation.ts';

const tagPattern = /^[a-z0-9][a-z0-9_.:-]{0,63}$/;

/** POST /v1/feedback: a rating of one request this tenant made. */
const feedbackBody = z.object({
  request_id: z.string().min(1).max(128),
  score: z.number().min(0, 'must be between 0 and 1').max(1, 'must be between 0 and 1').optional(),
  thumbs: z.enum(['up', 'down']).optional(),
  tags: z.array(z.string().regex(tagPattern, 'lower-case letters, digits and _ . : -, up to 64')).max(16).default([]),
  comment: z.string().max(2000).optional(),
}).strict().superRefine((body, ctx) => {
  if ((body.score === undefined) === (body.thumbs === undefined)) {
    ctx.addIssue({
      code: 'custom',
      path: ['score'],
      message: 'give exactly one of score (0..1) or thumbs (up | down)',
    });
  }
});

interface StoredFeedback {
  id: string;
  request_id: string;
  source: string;
  score: number;
  tags: string[];
  comment: string | null;
  created_at: string;
}

type FeedbackAnswer =
  | { status: 'created' | 'existing' | 'conflict'; feedback: StoredFeedback }
  | { status: 'unknown_request' };

function render(feedback: StoredFeedback) {
  return {
    id: feedback.id,
    object: 'feedback',
    request_id: feedback.request_id,
    source: feedback.source,
    score: feedback.score,
    tags: feedback.tags,
    comment: feedback.comment,
    created_at: feedback.created_at,
  };
}

/**
 * Feedback on a response, from the tenant that made the request: its API key
 * or one of its users is the source. Idempotent per (request_id, source): the
 * same rating again answers 200 with the stored row; a different rating for
 * the same pair is 409 (ratings are immutable once folded into reputation).
 * Another tenant's request id is indistinguishable from an unknown one: 404.
 */
export function feedbackRoutes(services: RouterServices) {
  const app = new Hono<AppEnv>();

  app.post('/', async (c) => {
    const tenant = await requestTenant(c, services);
    const source = tenant.apiKeyId ? `api_key:${tenant.apiKeyId}` : tenant.userId ? `user:${tenant.userId}` : null;
    if (!source) {
      throw new HttpError('forbidden', 'feedback comes from the tenant API key or user that made the request');
    }
    const parsed = feedbackBody.safeParse(await jsonBodyOf(c));
    if (!parsed.success) throw validationError(parsed.error, 'body');
    const body = parsed.data;
    const score = body.score ?? (body.thumbs === 'up' ? 1 : 0);
    const [row] = await services.deps.db<{ answer: FeedbackAnswer }[]>`
      select public.record_feedback(${tenant.tenantId}, ${body.request_id}, ${source}, ${tenant.apiKeyId ?? null},
                                    ${tenant.userId ?? null}, ${score}, ${body.tags}, ${
      body.comment ?? null
    }) as answer`;
    const answer = row.answer;
    switch (answer.status) {
      case 'unknown_request':
        throw new HttpError('not_found', `No request with id ${body.request_id} was found for this tenant.`, {
          param: 'request_id',
        });
      case 'conflict':
        throw new HttpError('conflict', 'This request already has a different rating from this source.', {
          param: 'request_id',
          details: { feedback: render(answer.feedback) },
        });
      case 'existing':
        return c.json(render(answer.feedback), 200);
      case 'created':
        return c.json(render(answer.feedback), 201);
    }
  });

  return app;
}
