/// <reference types="node" />
import { describe, expect, it } from 'vitest';
import { EVENT_TYPES, emptyWebhook, eventGroups, parseHeaders, toEndpointPatch, toEndpointSpec, validEventPattern, validateWebhook } from './WebhooksModel';

const known = ['job.created', 'job.started', 'job.progress', 'job.completed', 'job.failed', 'job.cancelled', 'schedule.triggered', 'schedule.failed', 'webhook.test'];
const valid = { ...emptyWebhook(), url: 'https://hooks.example.com/x' };

describe('validateWebhook', () => {
  it('accepts a complete form', () => expect(validateWebhook(valid, known)).toEqual({}));
  it.each([
    ['not a url', /absolute URL/],
    ['ftp://example.com/', /Only http and https/],
    ['https://user:pw@example.com/', /credentials/],
    ['https://example.com/#frag', /fragment/],
  ])('refuses the URL %s', (url, want) => expect(validateWebhook({ ...valid, url }, known).url).toMatch(want));
  it('checks events, headers, timeout and retries', () => {
    const e = validateWebhook({ ...valid, events: ['job.*', 'vm.*', 'job.nope'], headers: 'Authorization: Bearer x\nbroken', timeout: '10m', maxRetries: '51' }, known);
    expect(e).toEqual({
      events: 'Unknown event types: vm.*, job.nope.',
      headers: 'line 2: want "Name: value"',
      timeout: 'A duration between 100ms and 5m, such as 10s.',
      max_retries: 'A whole number from 0 to 50.',
    });
    expect(validateWebhook({ ...valid, events: [] }, known).events).toMatch(/at least one/);
  });
});

describe('event patterns', () => {
  it('accepts types, group wildcards over known groups and *', () => {
    expect(['*', 'job.*', 'schedule.*', 'job.failed'].every((p) => validEventPattern(p, known))).toBe(true);
    expect(['jobs.*', 'job', '', 'job.**'].some((p) => validEventPattern(p, known))).toBe(false);
    expect(eventGroups(known)).toEqual(['job', 'schedule', 'webhook']);
  });
});

describe('headers and bodies', () => {
  it('parses one header a line, values may hold colons', () => {
    expect(parseHeaders('Authorization: Bearer a:b\n\n X-Team : ops ')).toEqual({ Authorization: 'Bearer a:b', 'X-Team': 'ops' });
    expect(() => parseHeaders('webhook-id: 1')).toThrow('line 1: webhook-id is set by the sender');
  });
  it('builds the create and update bodies', () => {
    expect(toEndpointSpec({ ...valid, headers: 'X-A: 1', maxRetries: '3' })).toEqual({
      url: 'https://hooks.example.com/x',
      events: ['job.*'],
      headers: { 'X-A': '1' },
      timeout: '10s',
      max_retries: 3,
    });
    // An empty headers box keeps the stored headers on update.
    expect(toEndpointPatch({ ...valid, description: '' })).not.toHaveProperty('headers');
  });
});

describe('EVENT_TYPES', () => {
  it('is the daemon list (apitypes.EventTypes)', async () => {
    const { readFileSync } = await import('node:fs');
    const { resolve } = await import('node:path');
    const go = readFileSync(resolve(import.meta.dirname, '../../../../apitypes/webhooks.go'), 'utf8');
    const body = go.slice(go.indexOf('func EventTypes()'));
    const names = [...body.slice(0, body.indexOf('\n}')).matchAll(/Event\w+/g)].map((m) => m[0]).filter((n) => n !== 'EventTypes');
    const values = Object.fromEntries([...go.matchAll(/(Event\w+)\s+= "([^"]+)"/g)].map((m) => [m[1], m[2]]));
    expect(names.map((n) => values[n])).toEqual([...EVENT_TYPES]);
  });
});
