// The schedule form's model: values as the inputs hold them, validation
// before submit (the daemon's rules, so most mistakes never reach it), and
// the request bodies. Kept free of React so it is tested on its own.

import type { Schemas } from '../api/client';
import { validateSchedule } from '../lib/cron';

type JobRequest = Schemas['JobRequest'];
export type Overlap = NonNullable<Schemas['ScheduleSpec']['overlap']>;
export type CatchUp = NonNullable<Schemas['ScheduleSpec']['catch_up']>;
export type Format = '' | NonNullable<JobRequest['format']>;
export type DiskFormat = '' | NonNullable<JobRequest['disk_format']>;

export interface ScheduleValues {
  name: string;
  schedule: string;
  timezone: string;
  provider: string;
  vm: string;
  format: Format;
  diskFormat: DiskFormat;
  output: string;
  snapshot: boolean;
  powerOff: boolean;
  overlap: Overlap;
  catchUp: CatchUp;
  enabled: boolean;
  /** datetime-local text ("2026-12-31T23:00"), read in the browser's zone; empty: none. */
  endAt: string;
  maxRuns: string;
}

/** A schedule as the API returns it (the fields the form uses). */
export type ScheduleLike = Pick<Schemas['Schedule'], 'name' | 'schedule' | 'timezone' | 'job' | 'enabled' | 'overlap' | 'catch_up' | 'end_at' | 'max_runs'>;

export type FieldErrors = Partial<Record<string, string>>;

export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export function emptyValues(provider = ''): ScheduleValues {
  return {
    name: '',
    schedule: '0 2 * * *',
    timezone: 'UTC',
    provider,
    vm: '',
    format: '',
    diskFormat: '',
    output: '',
    snapshot: false,
    powerOff: false,
    overlap: 'skip',
    catchUp: 'once',
    enabled: true,
    endAt: '',
    maxRuns: '',
  };
}

const pad2 = (n: number) => String(n).padStart(2, '0');

/** An RFC 3339 time as a datetime-local value in the browser's zone. */
export function toLocalInput(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}T${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

export function valuesOf(s: ScheduleLike): ScheduleValues {
  return {
    name: s.name,
    schedule: s.schedule,
    timezone: s.timezone,
    provider: s.job.provider,
    vm: s.job.vm,
    format: (s.job.format ?? '') as Format,
    diskFormat: (s.job.disk_format ?? '') as DiskFormat,
    output: s.job.output ?? '',
    snapshot: !!s.job.snapshot,
    powerOff: !!s.job.power_off,
    overlap: s.overlap as Overlap,
    catchUp: s.catch_up as CatchUp,
    enabled: s.enabled,
    endAt: toLocalInput(s.end_at),
    maxRuns: s.max_runs == null ? '' : String(s.max_runs),
  };
}

/** Whether zone is an IANA zone this browser knows; the daemon is the
 * judge, so an unknown list (older browsers) accepts anything. */
export function knownZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** Field errors keyed as the API names the fields (job.vm, max_runs…). */
export function validate(v: ScheduleValues, creating: boolean): FieldErrors {
  const e: FieldErrors = {};
  if (creating) {
    if (!v.name.trim()) e.name = 'Give the schedule a name.';
    else if (v.name.startsWith('sch_')) e.name = 'Names starting with sch_ are reserved for schedule IDs.';
    else if (!NAME_PATTERN.test(v.name)) e.name = "Letters, digits, '.', '_' and '-', starting with a letter or digit (at most 100).";
  }
  const cron = validateSchedule(v.schedule);
  if (cron) e.schedule = cron;
  const zone = v.timezone.trim();
  if (zone === 'Local') e.timezone = 'Local means a different zone on every host; name the zone (e.g. Europe/Berlin).';
  else if (zone && !knownZone(zone)) e.timezone = `${zone} is not an IANA time zone (e.g. UTC, Europe/Berlin).`;
  if (!v.provider) e['job.provider'] = 'Choose a provider.';
  if (!v.vm.trim()) e['job.vm'] = 'Name the VM to export (inventory path, name, ID or UUID).';
  // With the format left to the daemon's default the daemon decides.
  if (v.diskFormat && v.diskFormat !== 'vmdk' && (v.format === 'ovf' || v.format === 'ova')) {
    e['job.disk_format'] = `${v.diskFormat} disks are exported only as plain disks (format "disks"); OVF packages carry VMDK.`;
  }
  if (v.snapshot && v.powerOff) e['job.power_off'] = 'Choose a snapshot or a power-off, not both.';
  if (v.maxRuns.trim()) {
    const n = Number(v.maxRuns);
    if (!Number.isInteger(n) || n < 1) e.max_runs = 'A whole number of runs, at least 1.';
  }
  if (v.endAt && Number.isNaN(new Date(v.endAt).getTime())) e.end_at = 'Not a date and time.';
  return e;
}

/** The job of a schedule: the form's fields over the options it does not
 * show, which are kept as they are. */
function job(v: ScheduleValues, base: JobRequest | undefined): JobRequest {
  const { format: _f, disk_format: _d, output: _o, snapshot: _s, power_off: _p, ...kept } = base ?? { provider: '', vm: '' };
  return {
    ...kept,
    provider: v.provider,
    vm: v.vm.trim(),
    ...(v.format ? { format: v.format } : {}),
    ...(v.diskFormat ? { disk_format: v.diskFormat } : {}),
    ...(v.output.trim() ? { output: v.output.trim() } : {}),
    ...(v.snapshot ? { snapshot: true } : {}),
    ...(v.powerOff ? { power_off: true } : {}),
  };
}

const endAt = (v: ScheduleValues) => (v.endAt ? new Date(v.endAt).toISOString() : undefined);
const maxRuns = (v: ScheduleValues) => (v.maxRuns.trim() ? Number(v.maxRuns) : undefined);

/** The body of POST /schedules. */
export function toSpec(v: ScheduleValues): Schemas['ScheduleSpec'] {
  return {
    name: v.name.trim(),
    schedule: v.schedule.trim(),
    timezone: v.timezone.trim() || 'UTC',
    job: job(v, undefined),
    enabled: v.enabled,
    overlap: v.overlap,
    catch_up: v.catchUp,
    ...(endAt(v) ? { end_at: endAt(v) } : {}),
    ...(maxRuns(v) ? { max_runs: maxRuns(v) } : {}),
  };
}

/** The body of PATCH /schedules/{id}: every edited field, the job's
 * options the form does not show kept from the schedule. */
export function toPatch(v: ScheduleValues, current: ScheduleLike): Schemas['SchedulePatch'] {
  return {
    schedule: v.schedule.trim(),
    timezone: v.timezone.trim() || 'UTC',
    job: job(v, current.job),
    enabled: v.enabled,
    overlap: v.overlap,
    catch_up: v.catchUp,
    ...(endAt(v) ? { end_at: endAt(v) } : {}),
    ...(maxRuns(v) ? { max_runs: maxRuns(v) } : {}),
  };
}

/** A refused request's field errors ("body.job.vm" → "job.vm"); the
 * detail goes under "" when no field is named. */
export function problemFieldErrors(error: unknown): FieldErrors {
  const out: FieldErrors = {};
  if (!error || typeof error !== 'object') return { '': String(error) };
  // An ApiError carries the body as .problem; a bare body is accepted too.
  const problem = 'problem' in error && error.problem && typeof error.problem === 'object' ? error.problem : error;
  const p = problem as { detail?: string; title?: string; errors?: { location?: string; message?: string }[] | null };
  for (const err of p.errors ?? []) {
    const field = (err.location ?? '').replace(/^body\.?/, '');
    const msg = err.message ?? 'invalid';
    out[field] = out[field] ? `${out[field]}; ${msg}` : msg;
  }
  if (!p.errors?.length) out[''] = p.detail ?? p.title ?? 'The request was refused.';
  return out;
}
