// Webhooks: endpoints (create, edit, enable/disable, delete, rotate the
// signing secret, send a test) and the delivery log of the selected
// endpoint with every attempt and redelivery. The signing secret is shown
// once, when created or rotated, and kept only in this component's state
// until dismissed — never in the query cache, a URL or storage.

import { Fragment, useState } from 'react';
import { useSearchParams } from 'react-router';
import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, unwrap, type Schemas } from '../api/client';
import { useCan } from '../auth/principal';
import { ConfirmDialog } from './SchedulesConfirm';
import { WebhookForm } from './WebhooksForm';
import { EVENT_TYPES, emptyWebhook, toEndpointPatch, toEndpointSpec, webhookValuesOf, type WebhookValues } from './WebhooksModel';
import css from './Schedules.module.css';

type Endpoint = Schemas['Endpoint'];
type Delivery = Schemas['Delivery'];

const when = (iso?: string | null) => (iso ? new Date(iso).toLocaleString() : '—');

function SecretOnce({ secret, endpoint, onDone }: { secret: string; endpoint: Endpoint; onDone: () => void }) {
  const [copied, setCopied] = useState(false);
  return (
    <section className={`card ${css.secret}`} aria-labelledby="secret-title" role="region">
      <h2 id="secret-title">Signing secret of {endpoint.url}</h2>
      <p>Store it now: it is shown this once. Receivers verify the webhook-signature header with it.</p>
      <div className="row">
        <code data-testid="webhook-secret" className="mono">
          {secret}
        </code>
        <button type="button" className="btn"
          onClick={async () => {
            await navigator.clipboard?.writeText(secret);
            setCopied(true);
          }}
        >
          {copied ? 'Copied' : 'Copy'}
        </button>
      </div>
      <button type="button" className="btn btn-primary" onClick={onDone}>
        I have stored it
      </button>
    </section>
  );
}

function DeliveryAttempts({ id }: { id: string }) {
  const d = useQuery({
    queryKey: ['webhook-delivery', id],
    queryFn: async () => {
      return unwrap(await api.GET('/api/v1/webhook-deliveries/{id}', { params: { path: { id } } }));
    },
  });
  if (d.isPending) return <p className="muted">Loading attempts…</p>;
  if (d.isError) return <p className="alert">Could not load the attempts.</p>;
  const attempts = d.data.history ?? [];
  if (!attempts.length) return <p className="muted">Not attempted yet.</p>;
  return (
    <ol className={css.attempts}>
      {attempts.map((a) => (
        <li key={a.attempt}>
          Attempt {a.attempt} at <time dateTime={a.at}>{when(a.at)}</time>: {a.status ? `HTTP ${a.status}` : 'no response'} in {a.latency_ms} ms
          {a.error && <span className="error"> — {a.error}</span>}
          {a.response && <pre className="codeblock">{a.response}</pre>}
        </li>
      ))}
    </ol>
  );
}

function Deliveries({ endpoint }: { endpoint: Endpoint }) {
  const qc = useQueryClient();
  const canAdmin = useCan('admin');
  const [state, setState] = useState<'' | 'pending' | 'delivered' | 'failed'>('');
  const [open, setOpen] = useState<string | null>(null);
  const [notice, setNotice] = useState('');
  const key = ['webhook-deliveries', endpoint.id, state];
  const list = useInfiniteQuery({
    queryKey: key,
    initialPageParam: '',
    // Deliveries are not on the event stream; poll while the log is open.
    refetchInterval: 3000,
    queryFn: async ({ pageParam }) => {
      return unwrap(await api.GET('/api/v1/webhooks/{id}/deliveries', {
        params: { path: { id: endpoint.id }, query: { limit: 50, ...(state ? { state } : {}), ...(pageParam ? { cursor: pageParam } : {}) } },
      }));
    },
    getNextPageParam: (last) => last.next_cursor || undefined,
  });
  const redeliver = useMutation({
    mutationFn: async (d: Delivery) => {
      unwrap(await api.POST('/api/v1/webhook-deliveries/{id}/redeliver', { params: { path: { id: d.id } } }));
    },
    onSuccess: (_, d) => {
      setNotice(`${d.event_type} queued for redelivery.`);
      qc.invalidateQueries({ queryKey: ['webhook-deliveries', endpoint.id] });
      qc.invalidateQueries({ queryKey: ['webhook-delivery', d.id] });
    },
    onError: (e) => setNotice(`Redeliver refused: ${e instanceof Error ? e.message : 'error'}`),
  });
  const items: Delivery[] = list.data?.pages.flatMap((p) => p.items ?? []) ?? [];
  const stateId = `deliveries-state-${endpoint.id}`;
  return (
    <section className="card" aria-labelledby="deliveries-title">
      <div className="row">
        <h2 id="deliveries-title">Deliveries to {endpoint.url}</h2>
        <div className="field">
          <label htmlFor={stateId}>State</label>
          <select id={stateId} value={state} onChange={(e) => setState(e.target.value as typeof state)}>
            <option value="">All</option>
            <option value="pending">Pending</option>
            <option value="delivered">Delivered</option>
            <option value="failed">Failed</option>
          </select>
        </div>
      </div>
      <p className={css.srOnly} role="status" aria-live="polite">
        {notice}
      </p>
      {list.isPending && <p className="muted">Loading…</p>}
      {list.isError && <p className="alert">Could not load the deliveries.</p>}
      {list.isSuccess && items.length === 0 && <p className="muted">No deliveries{state ? ` ${state}` : ''} yet.</p>}
      {items.length > 0 && (
        <div className="card table-wrap">
          <table className={css.stack} aria-label="Deliveries">
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">State</th>
                <th scope="col">Attempts</th>
                <th scope="col">Last response</th>
                <th scope="col">Created</th>
                <th scope="col">Next attempt</th>
                <th scope="col">
                  <span className={css.srOnly}>Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((d) => (
                <Fragment key={d.id}>
                  <tr data-delivery={d.event_type}>
                    <td data-label="Event">
                      <span className="mono">{d.event_type}</span>
                      <div className="muted mono" title="webhook-id, identical on every attempt">
                        {d.event_id}
                      </div>
                    </td>
                    <td data-label="State">
                      <span className={`badge state-${d.state}`}>{d.state}</span>
                    </td>
                    <td data-label="Attempts">{d.attempts}</td>
                    <td data-label="Last response">
                      {d.last_status ? `HTTP ${d.last_status}` : d.last_error ? 'error' : '—'}
                      {d.last_latency_ms ? ` · ${d.last_latency_ms} ms` : ''}
                      {d.last_error && <div className="error">{d.last_error}</div>}
                    </td>
                    <td data-label="Created">{when(d.created_at)}</td>
                    <td data-label="Next attempt">{d.state === 'pending' ? when(d.next_attempt_at) : '—'}</td>
                    <td className={css.actions} data-label="Actions">
                      <button type="button" className="btn" aria-expanded={open === d.id} onClick={() => setOpen(open === d.id ? null : d.id)}>
                        Attempts
                      </button>
                      {canAdmin && d.state !== 'pending' && (
                        <button type="button" className="btn" onClick={() => redeliver.mutate(d)} disabled={redeliver.isPending}>
                          Redeliver
                        </button>
                      )}
                    </td>
                  </tr>
                  {open === d.id && (
                    <tr >
                      <td colSpan={7}>
                        <DeliveryAttempts id={d.id} />
                      </td>
                    </tr>
                  )}
                </Fragment>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {list.hasNextPage && (
        <button type="button" className="btn" onClick={() => list.fetchNextPage()} disabled={list.isFetchingNextPage}>
          Load older deliveries
        </button>
      )}
    </section>
  );
}

export default function WebhooksPage() {
  const qc = useQueryClient();
  const canOperate = useCan('operator');
  const canAdmin = useCan('admin');
  const [params, setParams] = useSearchParams();
  const selected = params.get('endpoint') ?? '';
  const [editing, setEditing] = useState<Endpoint | 'new' | null>(null);
  const [confirm, setConfirm] = useState<{ kind: 'delete' | 'rotate'; ep: Endpoint } | null>(null);
  const [secret, setSecret] = useState<{ secret: string; endpoint: Endpoint } | null>(null);
  const [notice, setNotice] = useState('');

  const list = useQuery({
    queryKey: ['webhooks'],
    refetchInterval: 10_000,
    queryFn: async () => {
      const data = unwrap(await api.GET('/api/v1/webhooks'));
      return data.items ?? [];
    },
  });
  const refresh = () => qc.invalidateQueries({ queryKey: ['webhooks'] });
  const refused = (what: string) => (e: unknown) => setNotice(`${what}: ${e instanceof Error ? e.message : 'refused'}`);

  const toggle = useMutation({
    mutationFn: async (ep: Endpoint) => {
      unwrap(await api.PATCH('/api/v1/webhooks/{id}', { params: { path: { id: ep.id } }, body: { enabled: !ep.enabled } }));
    },
    onSuccess: refresh,
    onError: refused('Could not change the endpoint'),
  });
  const test = useMutation({
    mutationFn: async (ep: Endpoint) => {
      unwrap(await api.POST('/api/v1/webhooks/{id}/test', { params: { path: { id: ep.id } } }));
    },
    onSuccess: (_, ep) => {
      setNotice(`Test event sent to ${ep.url}.`);
      setParams({ endpoint: ep.id });
      qc.invalidateQueries({ queryKey: ['webhook-deliveries', ep.id] });
    },
    onError: refused('Could not send the test'),
  });
  const act = useMutation({
    mutationFn: async ({ kind, ep }: { kind: 'delete' | 'rotate'; ep: Endpoint }) => {
      if (kind === 'delete') {
        unwrap(await api.DELETE('/api/v1/webhooks/{id}', { params: { path: { id: ep.id } } }));
        return null;
      }
      return unwrap(await api.POST('/api/v1/webhooks/{id}/rotate-secret', { params: { path: { id: ep.id } }, body: {} }));
    },
    onSuccess: (created, { kind, ep }) => {
      setConfirm(null);
      if (kind === 'delete') {
        setNotice(`${ep.url} removed.`);
        if (selected === ep.id) setParams({});
      } else if (created) {
        setSecret({ secret: created.secret, endpoint: created.endpoint });
      }
      refresh();
    },
    onError: (e) => {
      setConfirm(null);
      refused('Refused')(e);
    },
  });

  async function save(v: WebhookValues) {
    if (editing === 'new') {
      const data = unwrap(await api.POST('/api/v1/webhooks', { body: toEndpointSpec(v) }));
      setSecret({ secret: data.secret, endpoint: data.endpoint });
    } else if (editing) {
      unwrap(await api.PATCH('/api/v1/webhooks/{id}', { params: { path: { id: editing.id } }, body: toEndpointPatch(v) }));
      setNotice(`${v.url} saved.`);
    }
    setEditing(null);
    await refresh();
  }

  const endpoints = list.data ?? [];
  const current = endpoints.find((e) => e.id === selected);

  return (
    <div className="page webhooks-page">
      <header className="row">
        <h1>Webhooks</h1>
        <span className="spacer" />
        {canAdmin && editing === null && (
          <button type="button" className="btn btn-primary" onClick={() => setEditing('new')}>
            Add endpoint
          </button>
        )}
      </header>
      <p className={css.srOnly} role="status" aria-live="polite">
        {notice}
      </p>
      {notice && (
        <p className="alert alert-info" aria-hidden="true">
          {notice}
        </p>
      )}
      {secret && <SecretOnce secret={secret.secret} endpoint={secret.endpoint} onDone={() => setSecret(null)} />}

      {editing !== null && (
        <section className="card" aria-label={editing === 'new' ? 'New endpoint' : `Edit ${editing.url}`}>
          <h2>{editing === 'new' ? 'New endpoint' : `Edit ${editing.url}`}</h2>
          <WebhookForm
            key={editing === 'new' ? 'new' : editing.id}
            initial={editing === 'new' ? emptyWebhook() : webhookValuesOf(editing)}
            creating={editing === 'new'}
            eventTypes={EVENT_TYPES}
            headerNames={editing === 'new' ? undefined : (editing.header_names ?? [])}
            onSubmit={save}
            onCancel={() => setEditing(null)}
          />
        </section>
      )}

      {list.isPending && <p className="muted">Loading…</p>}
      {list.isError && <p className="alert">Could not load the endpoints.</p>}
      {list.isSuccess && endpoints.length === 0 && <p className="muted">No webhook endpoints yet.</p>}
      {endpoints.length > 0 && (
        <div className="card table-wrap">
          <table className={css.stack} aria-label="Webhook endpoints">
            <thead>
              <tr>
                <th scope="col">URL</th>
                <th scope="col">Events</th>
                <th scope="col">Secret</th>
                <th scope="col">Pending</th>
                <th scope="col">Status</th>
                <th scope="col">
                  <span className={css.srOnly}>Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {endpoints.map((ep) => {
                const fromConfig = ep.source === 'config';
                return (
                  <tr key={ep.id} aria-current={ep.id === selected ? 'true' : undefined} data-endpoint={ep.url}>
                    <th scope="row" data-label="URL">
                      <span className="mono">{ep.url}</span>
                      {ep.description && <div className="muted">{ep.description}</div>}
                      {fromConfig && <div className="muted">from the configuration file</div>}
                    </th>
                    <td data-label="Events">
                      <ul className={css.chips} aria-label="Events">
                        {(ep.events ?? []).map((e) => (
                          <li key={e} className={`mono ${css.chip}`}>
                            {e}
                          </li>
                        ))}
                      </ul>
                    </td>
                    <td data-label="Secret">
                      <span className="mono">{ep.secret_prefix}…</span>
                      {ep.rotating_until && <div className="muted">previous secret also signs until {when(ep.rotating_until)}</div>}
                    </td>
                    <td data-label="Pending">{ep.pending}</td>
                    <td data-label="Status">
                      <span className={`badge ${ep.enabled ? 'state-enabled' : 'state-paused'}`}>{ep.enabled ? 'enabled' : 'disabled'}</span>
                      {ep.disabled_reason && <div className="muted">{ep.disabled_reason}</div>}
                    </td>
                    <td className={css.actions} data-label="Actions">
                      <button type="button" className="btn" onClick={() => setParams(ep.id === selected ? {} : { endpoint: ep.id })} aria-pressed={ep.id === selected}>
                        Deliveries
                      </button>
                      {canOperate && (
                        <button type="button" className="btn" onClick={() => test.mutate(ep)} disabled={test.isPending || !ep.enabled}>
                          Send test
                        </button>
                      )}
                      {canAdmin && (
                        <>
                          <button type="button" className="btn" onClick={() => toggle.mutate(ep)} disabled={toggle.isPending}>
                            {ep.enabled ? 'Disable' : 'Enable'}
                          </button>
                          {!fromConfig && (
                            <>
                              <button type="button" className="btn" onClick={() => setEditing(ep)}>
                                Edit
                              </button>
                              <button type="button" className="btn" onClick={() => setConfirm({ kind: 'rotate', ep })}>
                                Rotate secret
                              </button>
                              <button type="button" className="btn btn-danger" onClick={() => setConfirm({ kind: 'delete', ep })}>
                                Delete
                              </button>
                            </>
                          )}
                        </>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}

      {current && <Deliveries endpoint={current} />}

      <ConfirmDialog
        open={confirm !== null}
        title={confirm?.kind === 'delete' ? `Remove ${confirm.ep.url}?` : `Rotate the secret of ${confirm?.ep.url ?? ''}?`}
        confirmLabel={confirm?.kind === 'delete' ? 'Remove endpoint' : 'Rotate secret'}
        danger={confirm?.kind === 'delete'}
        busy={act.isPending}
        onConfirm={() => confirm && act.mutate(confirm)}
        onClose={() => setConfirm(null)}
      >
        {confirm?.kind === 'delete' ? (
          <p>The endpoint and its delivery history are removed; pending deliveries are dropped.</p>
        ) : (
          <p>A new secret is made and shown once. For 24 hours deliveries carry signatures with both secrets, so receivers can switch without losing events.</p>
        )}
      </ConfirmDialog>
    </div>
  );
}
