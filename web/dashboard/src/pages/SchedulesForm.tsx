// The create/edit form of a schedule: the expression with its human
// reading and the daemon's next due times (its preview endpoint, so the
// times are exactly the scheduler's), the export it submits, the policies.

import { useEffect, useId, useMemo, useState, type FormEvent, type ReactNode } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api, unwrap } from '../api/client';
import { CronError, describeSchedule } from '../lib/cron';
import { problemFieldErrors, validate, type FieldErrors, type ScheduleValues } from './SchedulesModel';
import css from './Schedules.module.css';

const ZONES: string[] = (() => {
  const intl = Intl as unknown as { supportedValuesOf?: (k: string) => string[] };
  try {
    return ['UTC', ...(intl.supportedValuesOf?.('timeZone') ?? []).filter((z) => z !== 'UTC')];
  } catch {
    return ['UTC'];
  }
})();

/** The value after the user stopped typing for ms. */
function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

export function Field(props: { id: string; label: string; error?: string; hint?: ReactNode; children: ReactNode }) {
  return (
    <div className={`field${props.error ? ' field-invalid' : ''}`}>
      <label htmlFor={props.id}>{props.label}</label>
      {props.children}
      {props.hint && (
        <div className="hint" id={`${props.id}-hint`}>
          {props.hint}
        </div>
      )}
      {props.error && (
        <div className="error" id={`${props.id}-error`} role="alert">
          {props.error}
        </div>
      )}
    </div>
  );
}

/** aria attributes tying an input to its hint and error. */
export function described(id: string, error?: string, hint?: boolean) {
  const ids = [hint ? `${id}-hint` : '', error ? `${id}-error` : ''].filter(Boolean).join(' ');
  return { id, 'aria-invalid': error ? true : undefined, 'aria-describedby': ids || undefined };
}

function NextRuns({ schedule, timezone }: { schedule: string; timezone: string }) {
  const expr = useDebounced(schedule.trim(), 300);
  const zone = useDebounced(timezone.trim() || 'UTC', 300);
  let localError: string | undefined;
  try {
    describeSchedule(expr);
  } catch (e) {
    if (!(e instanceof CronError)) throw e;
    localError = e.message;
  }
  const preview = useQuery({
    queryKey: ['schedule-preview', expr, zone],
    enabled: !localError,
    retry: false,
    queryFn: async () => {
      return unwrap(await api.POST('/api/v1/schedules/preview', { body: { schedule: expr, timezone: zone, count: 5 } }));
    },
  });
  if (localError) return null;
  if (preview.isPending) return <p className="muted">Asking the daemon for the next runs…</p>;
  if (preview.isError) {
    const errs = problemFieldErrors(preview.error);
    return (
      <p className="error" role="alert">
        {errs.schedule ?? errs.timezone ?? errs[''] ?? 'The daemon refused the expression.'}
      </p>
    );
  }
  return (
    <div>
      <span className="muted">Next runs ({zone}):</span>
      <ol className={css.nextRuns} aria-label="Next runs">
        {(preview.data?.next ?? []).map((t) => (
          <li key={t}>
            <time dateTime={t}>{formatInZone(t, zone)}</time>
          </li>
        ))}
      </ol>
    </div>
  );
}

export function formatInZone(iso: string, zone: string): string {
  try {
    return new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short', timeZone: zone, weekday: 'short' }).format(new Date(iso));
  } catch {
    return new Date(iso).toLocaleString();
  }
}

export interface ScheduleFormProps {
  initial: ScheduleValues;
  creating: boolean;
  providers: string[];
  /** Submits the values; rejects with the problem+json body on refusal. */
  onSubmit: (v: ScheduleValues) => Promise<void>;
  onCancel: () => void;
}

export function ScheduleForm({ initial, creating, providers, onSubmit, onCancel }: ScheduleFormProps) {
  const uid = useId();
  const id = (name: string) => `${uid}-${name}`;
  const [v, setV] = useState(initial);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [busy, setBusy] = useState(false);
  const set = <K extends keyof ScheduleValues>(k: K, value: ScheduleValues[K]) => setV((old) => ({ ...old, [k]: value }));

  const reading = useMemo(() => {
    try {
      return describeSchedule(v.schedule);
    } catch (e) {
      if (e instanceof CronError) return undefined;
      throw e;
    }
  }, [v.schedule]);

  async function submit(ev: FormEvent) {
    ev.preventDefault();
    const found = validate(v, creating);
    setErrors(found);
    if (Object.keys(found).length) {
      // Focus the first field at fault, so a keyboard user lands on it.
      const first = document.querySelector<HTMLElement>(`form[data-form="${uid}"] [aria-invalid="true"]`);
      first?.focus();
      return;
    }
    setBusy(true);
    try {
      await onSubmit(v);
    } catch (problem) {
      setErrors(problemFieldErrors(problem));
    } finally {
      setBusy(false);
    }
  }

  const zoneList = `${uid}-zones`;
  return (
    <form className={css.form} data-form={uid} onSubmit={submit} noValidate aria-label={creating ? 'New schedule' : `Edit schedule ${v.name}`}>
      {errors[''] && (
        <p className="alert" role="alert">
          {errors['']}
        </p>
      )}
      <fieldset>
        <legend>When</legend>
        {creating && (
          <Field id={id('name')} label="Name" error={errors.name} hint="Letters, digits, '.', '_' and '-', e.g. nightly-db01">
            <input {...described(id('name'), errors.name, true)} value={v.name} onChange={(e) => set('name', e.target.value)} autoComplete="off" required />
          </Field>
        )}
        <Field
          id={id('schedule')}
          label="Cron expression"
          error={errors.schedule}
          hint={
            <>
              <span className={css.reading} data-testid="cron-reading">
                {reading ?? 'minute hour day-of-month month day-of-week, @daily, @every 30m…'}
              </span>
              <NextRuns schedule={v.schedule} timezone={v.timezone} />
            </>
          }
        >
          <input
            {...described(id('schedule'), errors.schedule, true)}
            className="mono"
            value={v.schedule}
            onChange={(e) => set('schedule', e.target.value)}
            autoComplete="off"
            spellCheck={false}
            required
          />
        </Field>
        <Field id={id('timezone')} label="Time zone" error={errors.timezone}>
          <input {...described(id('timezone'), errors.timezone)} list={zoneList} value={v.timezone} onChange={(e) => set('timezone', e.target.value)} autoComplete="off" />
          <datalist id={zoneList}>
            {ZONES.map((z) => (
              <option key={z} value={z} />
            ))}
          </datalist>
        </Field>
      </fieldset>

      <fieldset>
        <legend>Export</legend>
        <Field id={id('provider')} label="Provider" error={errors['job.provider']}>
          <select {...described(id('provider'), errors['job.provider'])} value={v.provider} onChange={(e) => set('provider', e.target.value)}>
            <option value="">Choose…</option>
            {providers.map((p) => (
              <option key={p}>{p}</option>
            ))}
          </select>
        </Field>
        <Field id={id('vm')} label="VM" error={errors['job.vm']} hint="Inventory path, name, ID or UUID">
          <input {...described(id('vm'), errors['job.vm'], true)} value={v.vm} onChange={(e) => set('vm', e.target.value)} autoComplete="off" />
        </Field>
        <Field id={id('format')} label="Format" error={errors['job.format']}>
          <select {...described(id('format'), errors['job.format'])} value={v.format} onChange={(e) => set('format', e.target.value as ScheduleValues['format'])}>
            <option value="">Daemon default</option>
            <option value="ovf">OVF folder</option>
            <option value="ova">OVA</option>
            <option value="disks">Plain disks</option>
          </select>
        </Field>
        <Field id={id('disk')} label="Disk format" error={errors['job.disk_format']}>
          <select {...described(id('disk'), errors['job.disk_format'])} value={v.diskFormat} onChange={(e) => set('diskFormat', e.target.value as ScheduleValues['diskFormat'])}>
            <option value="">Daemon default</option>
            <option value="vmdk">VMDK (streamOptimized)</option>
            <option value="raw">raw</option>
            <option value="qcow2">qcow2</option>
            <option value="vhd">VHD</option>
            <option value="vhdx">VHDX</option>
          </select>
        </Field>
        <Field id={id('output')} label="Output directory" error={errors['job.output']} hint="Relative to the daemon's export directory; empty: one per job">
          <input {...described(id('output'), errors['job.output'], true)} value={v.output} onChange={(e) => set('output', e.target.value)} autoComplete="off" />
        </Field>
        <div className="check">
          <label>
            <input type="checkbox" checked={v.snapshot} onChange={(e) => set('snapshot', e.target.checked)} /> Export a running VM from a snapshot
          </label>
          <label>
            <input type="checkbox" checked={v.powerOff} onChange={(e) => set('powerOff', e.target.checked)} aria-describedby={errors['job.power_off'] ? id('poweroff-error') : undefined} /> Power the VM off first
          </label>
          {errors['job.power_off'] && (
            <div className="error" id={id('poweroff-error')} role="alert">
              {errors['job.power_off']}
            </div>
          )}
        </div>
      </fieldset>

      <fieldset>
        <legend>Policy</legend>
        <Field id={id('overlap')} label="While a previous run is busy" error={errors.overlap}>
          <select {...described(id('overlap'), errors.overlap)} value={v.overlap} onChange={(e) => set('overlap', e.target.value as ScheduleValues['overlap'])}>
            <option value="skip">Skip the run</option>
            <option value="queue">Queue it after</option>
            <option value="allow">Run alongside</option>
          </select>
        </Field>
        <Field id={id('catchup')} label="Runs missed while the daemon was down" error={errors.catch_up}>
          <select {...described(id('catchup'), errors.catch_up)} value={v.catchUp} onChange={(e) => set('catchUp', e.target.value as ScheduleValues['catchUp'])}>
            <option value="once">Make up with one run</option>
            <option value="none">Drop them</option>
          </select>
        </Field>
        <Field id={id('endat')} label="No runs after" error={errors.end_at} hint="Optional, in your browser's time zone">
          <input type="datetime-local" {...described(id('endat'), errors.end_at, true)} value={v.endAt} onChange={(e) => set('endAt', e.target.value)} />
        </Field>
        <Field id={id('maxruns')} label="Stop after runs" error={errors.max_runs} hint="Optional">
          <input type="number" min={1} inputMode="numeric" {...described(id('maxruns'), errors.max_runs, true)} value={v.maxRuns} onChange={(e) => set('maxRuns', e.target.value)} />
        </Field>
        <label className="check">
          <input type="checkbox" checked={v.enabled} onChange={(e) => set('enabled', e.target.checked)} /> Enabled
        </label>
      </fieldset>

      <div className="row">
        <button type="submit" className="btn btn-primary" disabled={busy}>
          {busy ? 'Saving…' : creating ? 'Create schedule' : 'Save changes'}
        </button>
        <button type="button" className="btn" onClick={onCancel} disabled={busy}>
          Cancel
        </button>
      </div>
    </form>
  );
}
