// The webhook endpoint form: URL, event filters from the daemon's event
// types, extra headers (values write-only), per-attempt timeout, retries.

import { useId, useState, type FormEvent } from 'react';
import { Field, described } from './SchedulesForm';
import { problemFieldErrors, type FieldErrors } from './SchedulesModel';
import { eventGroups, validateWebhook, type WebhookValues } from './WebhooksModel';
import css from './Schedules.module.css';

export interface WebhookFormProps {
  initial: WebhookValues;
  creating: boolean;
  /** Endpoints from the configuration file can only be enabled or disabled. */
  eventTypes: readonly string[];
  /** Names of the headers stored now (edit), whose values are never shown. */
  headerNames?: string[];
  onSubmit: (v: WebhookValues) => Promise<void>;
  onCancel: () => void;
}

export function WebhookForm({ initial, creating, eventTypes, headerNames, onSubmit, onCancel }: WebhookFormProps) {
  const uid = useId();
  const id = (name: string) => `${uid}-${name}`;
  const [v, setV] = useState(initial);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [busy, setBusy] = useState(false);
  const set = <K extends keyof WebhookValues>(k: K, value: WebhookValues[K]) => setV((old) => ({ ...old, [k]: value }));
  const toggleEvent = (e: string, on: boolean) => set('events', on ? [...v.events, e] : v.events.filter((x) => x !== e));

  async function submit(ev: FormEvent) {
    ev.preventDefault();
    const found = validateWebhook(v, eventTypes);
    setErrors(found);
    if (Object.keys(found).length) {
      document.querySelector<HTMLElement>(`form[data-form="${uid}"] [aria-invalid="true"]`)?.focus();
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

  // Wildcards cover a group's types except the chatty or manual ones,
  // which the daemon delivers only when listed by name.
  const explicitOnly = new Set(['job.progress', 'webhook.test']);
  const choices = [
    { value: '*', label: 'Every event', hint: 'except job.progress' },
    ...eventGroups(eventTypes)
      .filter((g) => eventTypes.filter((t) => t.startsWith(`${g}.`) && !explicitOnly.has(t)).length > 1)
      .map((g) => ({ value: `${g}.*`, label: `All ${g} events`, hint: g === 'job' ? 'except job.progress' : '' })),
    ...eventTypes.map((t) => ({ value: t, label: t, hint: explicitOnly.has(t) ? 'only when listed by name' : '' })),
  ];
  const custom = v.events.filter((e) => !choices.some((c) => c.value === e));

  return (
    <form className={css.form} data-form={uid} onSubmit={submit} noValidate aria-label={creating ? 'New webhook endpoint' : 'Edit webhook endpoint'}>
      {errors[''] && (
        <p className="alert" role="alert">
          {errors['']}
        </p>
      )}
      <fieldset>
        <legend>Receiver</legend>
        <Field id={id('url')} label="URL" error={errors.url} hint="Deliveries are POSTed here, signed per Standard Webhooks">
          <input type="url" {...described(id('url'), errors.url, true)} value={v.url} onChange={(e) => set('url', e.target.value)} autoComplete="off" required />
        </Field>
        <Field id={id('desc')} label="Description" error={errors.description}>
          <input {...described(id('desc'), errors.description)} value={v.description} onChange={(e) => set('description', e.target.value)} maxLength={500} />
        </Field>
        <Field
          id={id('headers')}
          label="Extra headers"
          error={errors.headers}
          hint={
            creating || !headerNames?.length
              ? 'One "Name: value" a line, e.g. Authorization: Bearer …'
              : `Stored: ${headerNames.join(', ')} (values are never shown). Leave empty to keep them; type new lines to replace them.`
          }
        >
          <textarea {...described(id('headers'), errors.headers, true)} className="mono" rows={2} value={v.headers} onChange={(e) => set('headers', e.target.value)} spellCheck={false} />
        </Field>
      </fieldset>
      <fieldset aria-describedby={errors.events ? id('events-error') : undefined}>
        <legend>Events</legend>
        <div className={css.events}>
          {[...choices, ...custom.map((c) => ({ value: c, label: c, hint: '' }))].map((c) => (
            <label key={c.value}>
              <input type="checkbox" checked={v.events.includes(c.value)} onChange={(e) => toggleEvent(c.value, e.target.checked)} /> <span className="mono">{c.label}</span>
              {c.hint && <span className="muted"> ({c.hint})</span>}
            </label>
          ))}
        </div>
        {errors.events && (
          <div className="error" id={id('events-error')} role="alert">
            {errors.events}
          </div>
        )}
      </fieldset>
      <fieldset>
        <legend>Delivery</legend>
        <Field id={id('timeout')} label="Timeout per attempt" error={errors.timeout} hint="e.g. 10s (100ms to 5m)">
          <input {...described(id('timeout'), errors.timeout, true)} value={v.timeout} onChange={(e) => set('timeout', e.target.value)} autoComplete="off" />
        </Field>
        <Field id={id('retries')} label="Retries after the first attempt" error={errors.max_retries} hint="Empty: the Standard Webhooks schedule (7 retries over about 27 hours)">
          <input type="number" min={0} max={50} inputMode="numeric" {...described(id('retries'), errors.max_retries, true)} value={v.maxRetries} onChange={(e) => set('maxRetries', e.target.value)} />
        </Field>
      </fieldset>
      <div className="row">
        <button type="submit" className="btn btn-primary" disabled={busy}>
          {busy ? 'Saving…' : creating ? 'Add endpoint' : 'Save changes'}
        </button>
        <button type="button" className="btn" onClick={onCancel} disabled={busy}>
          Cancel
        </button>
      </div>
    </form>
  );
}
