// The webhook endpoint form's model: validation before submit with the
// daemon's rules (daemon/webhooks) and the request bodies.

import type { Schemas } from '../api/client';
import { parseGoDuration } from '../lib/cron';
import type { FieldErrors } from './SchedulesModel';

/** The event types the daemon emits (apitypes.EventTypes; a test keeps
 * the two equal, as the OpenAPI document does not enumerate them). */
export const EVENT_TYPES = [
  'job.created',
  'job.started',
  'job.progress',
  'job.completed',
  'job.failed',
  'job.cancelled',
  'schedule.triggered',
  'schedule.failed',
  'webhook.test',
] as const;

export interface WebhookValues {
  url: string;
  description: string;
  events: string[];
  /** One "Name: value" per line; on edit, empty keeps the stored headers. */
  headers: string;
  timeout: string;
  maxRetries: string;
}

export type EndpointLike = Pick<Schemas['Endpoint'], 'url' | 'description' | 'events' | 'timeout_seconds' | 'max_retries'>;

export function emptyWebhook(): WebhookValues {
  return { url: '', description: '', events: ['job.*'], headers: '', timeout: '10s', maxRetries: '' };
}

export function webhookValuesOf(ep: EndpointLike): WebhookValues {
  return {
    url: ep.url,
    description: ep.description ?? '',
    events: [...(ep.events ?? [])],
    headers: '',
    timeout: `${ep.timeout_seconds}s`,
    maxRetries: String(ep.max_retries),
  };
}

/** Whether pattern is an event subscription the daemon accepts: a known
 * type, a "prefix.*" wildcard over known types, or "*". */
export function validEventPattern(pattern: string, known: readonly string[]): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('.*')) {
    const prefix = pattern.slice(0, -1);
    return known.some((t) => t.startsWith(prefix));
  }
  return known.includes(pattern);
}

/** The event groups ("job", "schedule"…) of the known types, for the
 * wildcard choices. */
export function eventGroups(known: readonly string[]): string[] {
  return [...new Set(known.map((t) => t.split('.')[0] ?? t))];
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Set by the sender (daemon/webhooks reservedHeaders).
const RESERVED = ['webhook-id', 'webhook-timestamp', 'webhook-signature', 'content-type', 'content-length', 'host', 'user-agent'];

/** Parses the headers text; throws an Error naming the bad line. */
export function parseHeaders(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    const colon = line.indexOf(':');
    const name = colon < 0 ? '' : line.slice(0, colon).trim();
    if (!name || !HEADER_NAME.test(name)) throw new Error(`line ${i + 1}: want "Name: value"`);
    if (RESERVED.includes(name.toLowerCase())) throw new Error(`line ${i + 1}: ${name} is set by the sender`);
    out[name] = line.slice(colon + 1).trim();
  });
  return out;
}

export function validateWebhook(v: WebhookValues, known: readonly string[]): FieldErrors {
  const e: FieldErrors = {};
  let u: URL | undefined;
  try {
    u = new URL(v.url.trim());
  } catch {
    e.url = 'Give an absolute URL, e.g. https://hooks.example.com/hypersdk.';
  }
  if (u) {
    if (u.protocol !== 'https:' && u.protocol !== 'http:') e.url = 'Only http and https URLs can receive webhooks.';
    else if (u.username || u.password) e.url = 'Must not contain credentials; send them as a header.';
    else if (u.hash) e.url = 'Must not have a fragment.';
  }
  if (v.description.length > 500) e.description = 'At most 500 characters.';
  if (v.events.length === 0) e.events = 'Choose at least one event.';
  else {
    const bad = v.events.filter((p) => !validEventPattern(p, known));
    if (bad.length) e.events = `Unknown event type${bad.length > 1 ? 's' : ''}: ${bad.join(', ')}.`;
  }
  try {
    parseHeaders(v.headers);
  } catch (err) {
    e.headers = (err as Error).message;
  }
  if (v.timeout.trim()) {
    const ms = parseGoDuration(v.timeout);
    if (ms === undefined || ms < 100 || ms > 300_000) e.timeout = 'A duration between 100ms and 5m, such as 10s.';
  }
  if (v.maxRetries.trim()) {
    const n = Number(v.maxRetries);
    if (!Number.isInteger(n) || n < 0 || n > 50) e.max_retries = 'A whole number from 0 to 50.';
  }
  return e;
}

/** The body of POST /webhooks. */
export function toEndpointSpec(v: WebhookValues): Schemas['EndpointSpec'] {
  const headers = parseHeaders(v.headers);
  return {
    url: v.url.trim(),
    events: v.events,
    ...(v.description.trim() ? { description: v.description.trim() } : {}),
    ...(Object.keys(headers).length ? { headers } : {}),
    ...(v.timeout.trim() ? { timeout: v.timeout.trim() } : {}),
    ...(v.maxRetries.trim() ? { max_retries: Number(v.maxRetries) } : {}),
  };
}

/** The body of PATCH /webhooks/{id}: headers only when new ones are typed
 * (their stored values are never shown, so empty keeps them). */
export function toEndpointPatch(v: WebhookValues): Schemas['EndpointPatch'] {
  const headers = parseHeaders(v.headers);
  return {
    url: v.url.trim(),
    description: v.description.trim(),
    events: v.events,
    ...(Object.keys(headers).length ? { headers } : {}),
    ...(v.timeout.trim() ? { timeout: v.timeout.trim() } : {}),
    ...(v.maxRetries.trim() ? { max_retries: Number(v.maxRetries) } : {}),
  };
}
