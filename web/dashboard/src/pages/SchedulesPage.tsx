// Schedules: the list with each expression's reading and next run,
// create/edit, enable/disable, run now, delete (with confirmation) and the
// execution history of the selected schedule. Mutating controls follow the
// caller's role (operator: create, edit, pause, run; admin: delete); the
// daemon enforces the same rules.

import { useState } from 'react';
import { Link, useSearchParams } from 'react-router';
import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, unwrap, type Schemas } from '../api/client';
import { useCan } from '../auth/principal';
import { describeSchedule } from '../lib/cron';
import { ConfirmDialog } from './SchedulesConfirm';
import { ScheduleForm, formatInZone } from './SchedulesForm';
import { emptyValues, toPatch, toSpec, valuesOf, type ScheduleLike, type ScheduleValues } from './SchedulesModel';
import css from './Schedules.module.css';

type Schedule = Schemas['Schedule'];
type Execution = Schemas['Execution'];

function reading(expr: string): string {
  try {
    return describeSchedule(expr);
  } catch {
    return '';
  }
}

const when = (iso?: string | null) => (iso ? new Date(iso).toLocaleString() : '—');

function ExecutionStatus({ status }: { status: string }) {
  return <span className={`badge state-${status}`}>{status.replace('_', ' ')}</span>;
}

function History({ schedule }: { schedule: Schedule }) {
  const history = useInfiniteQuery({
    queryKey: ['schedule-history', schedule.id],
    initialPageParam: '',
    refetchInterval: 5000,
    queryFn: async ({ pageParam }) => {
      return unwrap(await api.GET('/api/v1/schedules/{id}/history', {
        params: { path: { id: schedule.id }, query: { limit: 50, ...(pageParam ? { cursor: pageParam } : {}) } },
      }));
    },
    getNextPageParam: (last) => last.next_cursor || undefined,
  });
  const items: Execution[] = history.data?.pages.flatMap((p) => p.items ?? []) ?? [];
  return (
    <section className="card" aria-labelledby="history-title">
      <h2 id="history-title">Runs of {schedule.name}</h2>
      {history.isPending && <p className="muted">Loading…</p>}
      {history.isError && <p className="alert">Could not load the history.</p>}
      {history.isSuccess && items.length === 0 && <p className="muted">No runs yet.</p>}
      {items.length > 0 && (
        <div className="card table-wrap">
          <table className={css.stack}>
            <thead>
              <tr>
                <th scope="col">Started</th>
                <th scope="col">Kind</th>
                <th scope="col">Status</th>
                <th scope="col">Job</th>
                <th scope="col">Duration</th>
                <th scope="col">Late by</th>
                <th scope="col">Detail</th>
              </tr>
            </thead>
            <tbody>
              {items.map((x) => (
                <tr key={x.id}>
                  <td data-label="Started">
                    <time dateTime={x.executed_at}>{when(x.executed_at)}</time>
                  </td>
                  <td data-label="Kind">{x.kind.replace('_', ' ')}</td>
                  <td data-label="Status">
                    <ExecutionStatus status={x.status} />
                  </td>
                  <td data-label="Job">{x.job_id ? <Link to={`/jobs/${encodeURIComponent(x.job_id)}`}>{x.job_id.slice(0, 8)}…</Link> : '—'}</td>
                  <td data-label="Duration">{x.duration_seconds != null ? `${x.duration_seconds.toFixed(1)} s` : '—'}</td>
                  <td data-label="Late by">{x.lag_seconds.toFixed(1)} s</td>
                  <td data-label="Detail">{x.detail || ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {history.hasNextPage && (
        <button type="button" className="btn" onClick={() => history.fetchNextPage()} disabled={history.isFetchingNextPage}>
          Load older runs
        </button>
      )}
    </section>
  );
}

export default function SchedulesPage() {
  const qc = useQueryClient();
  const canOperate = useCan('operator');
  const canAdmin = useCan('admin');
  const [params, setParams] = useSearchParams();
  const selected = params.get('schedule') ?? '';
  const [editing, setEditing] = useState<Schedule | 'new' | null>(null);
  const [deleting, setDeleting] = useState<Schedule | null>(null);
  const [notice, setNotice] = useState('');

  const list = useQuery({
    queryKey: ['schedules'],
    refetchInterval: 10_000,
    queryFn: async () => {
      const data = unwrap(await api.GET('/api/v1/schedules'));
      return data.items ?? [];
    },
  });
  const providers = useQuery({
    queryKey: ['providers'],
    queryFn: async () => {
      return unwrap(await api.GET('/api/v1/providers'));
    },
  });
  const providerNames = (providers.data?.items ?? []).map((p: { name: string }) => p.name);

  const refresh = () => qc.invalidateQueries({ queryKey: ['schedules'] });
  const failed = (what: string) => (e: unknown) => setNotice(`${what}: ${e instanceof Error ? e.message : 'refused'}`);

  const toggle = useMutation({
    mutationFn: async (s: Schedule) => {
      const path = s.enabled ? '/api/v1/schedules/{id}/disable' : '/api/v1/schedules/{id}/enable';
      unwrap(await api.POST(path, { params: { path: { id: s.id } } }));
    },
    onSuccess: refresh,
    onError: failed('Could not change the schedule'),
  });
  const runNow = useMutation({
    mutationFn: async (s: Schedule) => {
      return unwrap(await api.POST('/api/v1/schedules/{id}/run', { params: { path: { id: s.id } } }));
    },
    onSuccess: (x, s) => {
      setNotice(x.job_id ? `${s.name}: job ${x.job_id} submitted.` : `${s.name}: ${x.status.replace('_', ' ')}${x.detail ? ` (${x.detail})` : ''}.`);
      setParams({ schedule: s.id });
      qc.invalidateQueries({ queryKey: ['schedule-history', s.id] });
      refresh();
    },
    onError: failed('Could not run the schedule'),
  });
  const remove = useMutation({
    mutationFn: async (s: Schedule) => {
      unwrap(await api.DELETE('/api/v1/schedules/{id}', { params: { path: { id: s.id } } }));
    },
    onSuccess: (_, s) => {
      setDeleting(null);
      setNotice(`${s.name} deleted.`);
      if (selected === s.id) setParams({});
      refresh();
    },
    onError: (e) => {
      setDeleting(null);
      failed('Could not delete the schedule')(e);
    },
  });

  async function save(v: ScheduleValues) {
    if (editing === 'new') {
      unwrap(await api.POST('/api/v1/schedules', { body: toSpec(v) }));
      setNotice(`${v.name} created.`);
    } else if (editing) {
      unwrap(await api.PATCH('/api/v1/schedules/{id}', { params: { path: { id: editing.id } }, body: toPatch(v, editing as ScheduleLike) }));
      setNotice(`${editing.name} saved.`);
    }
    setEditing(null);
    await refresh();
  }

  const schedules = list.data ?? [];
  const current = schedules.find((s) => s.id === selected);

  return (
    <div className="page schedules-page">
      <header className="row">
        <h1>Schedules</h1>
        <span className="spacer" />
        {canOperate && editing === null && (
          <button type="button" className="btn btn-primary" onClick={() => setEditing('new')}>
            New schedule
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

      {editing !== null && (
        <section className="card" aria-label={editing === 'new' ? 'New schedule' : `Edit ${editing.name}`}>
          <h2>{editing === 'new' ? 'New schedule' : `Edit ${editing.name}`}</h2>
          <ScheduleForm
            key={editing === 'new' ? 'new' : editing.id}
            initial={editing === 'new' ? emptyValues(providerNames[0] ?? '') : valuesOf(editing as ScheduleLike)}
            creating={editing === 'new'}
            providers={providerNames}
            onSubmit={save}
            onCancel={() => setEditing(null)}
          />
        </section>
      )}

      {list.isPending && <p className="muted">Loading…</p>}
      {list.isError && <p className="alert">Could not load the schedules.</p>}
      {list.isSuccess && schedules.length === 0 && <p className="muted">No schedules yet.{canOperate ? ' Create one to export a VM on a timetable.' : ''}</p>}
      {schedules.length > 0 && (
        <div className="card table-wrap">
          <table className={css.stack} aria-label="Schedules">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">When</th>
                <th scope="col">Export</th>
                <th scope="col">Next run</th>
                <th scope="col">Last run</th>
                <th scope="col">Status</th>
                <th scope="col">
                  <span className={css.srOnly}>Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {schedules.map((s) => (
                <tr key={s.id} aria-current={s.id === selected ? 'true' : undefined} data-schedule={s.name}>
                  <th scope="row" data-label="Name">
                    {s.name}
                  </th>
                  <td data-label="When">
                    <code>{s.schedule}</code>
                    <div className={`muted ${css.reading}`}>
                      {reading(s.schedule)}
                      {s.timezone !== 'UTC' ? ` (${s.timezone})` : ' (UTC)'}
                    </div>
                  </td>
                  <td data-label="Export">
                    {s.job.provider} / {s.job.vm}
                    {s.job.format ? ` · ${s.job.format}` : ''}
                  </td>
                  <td data-label="Next run">{s.enabled && s.next_run ? <time dateTime={s.next_run}>{formatInZone(s.next_run, s.timezone)}</time> : '—'}</td>
                  <td data-label="Last run">
                    {when(s.last_run)}
                    {s.run_count > 0 && <div className="muted">{s.run_count} runs</div>}
                  </td>
                  <td data-label="Status">
                    <span className={`badge ${s.enabled ? 'state-enabled' : 'state-paused'}`}>{s.enabled ? 'enabled' : 'paused'}</span>
                  </td>
                  <td className={css.actions} data-label="Actions">
                    <button type="button" className="btn" onClick={() => setParams(s.id === selected ? {} : { schedule: s.id })} aria-pressed={s.id === selected}>
                      History<span className={css.srOnly}> of {s.name}</span>
                    </button>
                    {canOperate && (
                      <>
                        <button type="button" className="btn" onClick={() => runNow.mutate(s)} disabled={runNow.isPending}>
                          Run now<span className={css.srOnly}> {s.name}</span>
                        </button>
                        <button type="button" className="btn" onClick={() => toggle.mutate(s)} disabled={toggle.isPending}>
                          {s.enabled ? 'Disable' : 'Enable'}
                          <span className={css.srOnly}> {s.name}</span>
                        </button>
                        <button type="button" className="btn" onClick={() => setEditing(s)}>
                          Edit<span className={css.srOnly}> {s.name}</span>
                        </button>
                      </>
                    )}
                    {canAdmin && (
                      <button type="button" className="btn btn-danger" onClick={() => setDeleting(s)}>
                        Delete<span className={css.srOnly}> {s.name}</span>
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      {current && <History schedule={current} />}

      <ConfirmDialog
        open={deleting !== null}
        title={`Delete ${deleting?.name ?? ''}?`}
        confirmLabel="Delete schedule"
        danger
        busy={remove.isPending}
        onConfirm={() => deleting && remove.mutate(deleting)}
        onClose={() => setDeleting(null)}
      >
        <p>The schedule and its run history are removed. Jobs it already submitted are kept.</p>
      </ConfirmDialog>
    </div>
  );
}
