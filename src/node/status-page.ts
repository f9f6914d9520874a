// The status page (GET /ui) on the admin listener, and the feed of recent events it polls. The page is
// static: it draws what the admin API answers, so it sees exactly what meshctl sees, with the same access rules.
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { FleetEvent } from '../api/admin-types.js';
import type { EventLog } from './event-log.js';

const asset = (file: string) => readFileSync(new URL(`./ui/${file}`, import.meta.url));

const HEADERS = {
  'content-security-policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-cache',
};

export function registerStatusPage(app: FastifyInstance, events: EventLog): void {
  const page = asset('status.html');
  const script = asset('status.js');
  app.get('/ui', async (_req, reply) => reply.headers(HEADERS).type('text/html; charset=utf-8').send(page));
  app.get('/ui/status.js', async (_req, reply) => reply.headers(HEADERS).type('text/javascript; charset=utf-8').send(script));
  app.get('/_mesh/v1/events', async (req): Promise<FleetEvent[]> => {
    const since = Number((req.query as { since?: string }).since ?? 0);
    return events.since(Number.isFinite(since) ? since : 0);
  });
}
