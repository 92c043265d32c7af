// The schedule form's model: values as the inputs hold them, validation
// before submit (the daemon's rules, so most mistakes never reach it), and
// the request bodies. Kept free of React so it is tested on its own.

import { validateSchedule } from '../lib/cron';

export type Overlap = 'skip' | 'queue' | 'allow';
export type CatchUp = 'none' | 'once';
export type Format = '' | 'ovf' | 'ova' | 'disks';
export type DiskFormat = '' | 'vmdk' | 'raw' | 'qcow2' | 'vhd' | 'vhdx';

/** The job part of a schedule as the form edits it. */
export interface ScheduleJob {
  provider: string;
  vm: string;
  format?: Format | string;
  disk_format?: DiskFormat | string;
  output?: string;
  snapshot?: boolean;
  power_off?: boolean;
  [other: string]: unknown; // options the form does not edit are kept as they are
}

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
export interface ScheduleLike {
  name: string;
  schedule: string;
  timezone: string;
  job: ScheduleJob;
  enabled: boolean;
  overlap: string;
  catch_up: string;
  end_at?: string | null;
  max_runs?: number | null;
}

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

function job(v: ScheduleValues, base: ScheduleJob | undefined): ScheduleJob {
  const j: ScheduleJob = { ...base, provider: v.provider, vm: v.vm.trim() };
  const set = (key: string, value: unknown) => {
    if (value === '' || value === false) delete j[key];
    else j[key] = value;
  };
  set('format', v.format);
  set('disk_format', v.diskFormat);
  set('output', v.output.trim());
  set('snapshot', v.snapshot);
  set('power_off', v.powerOff);
  return j;
}

const endAt = (v: ScheduleValues) => (v.endAt ? new Date(v.endAt).toISOString() : undefined);
const maxRuns = (v: ScheduleValues) => (v.maxRuns.trim() ? Number(v.maxRuns) : undefined);

/** The body of POST /schedules. */
export function toSpec(v: ScheduleValues) {
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
export function toPatch(v: ScheduleValues, current: ScheduleLike) {
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

/** A problem+json body's field errors ("body.job.vm" → "job.vm"); the
 * detail goes under "" when no field is named. */
export function problemFieldErrors(problem: unknown): FieldErrors {
  const out: FieldErrors = {};
  if (!problem || typeof problem !== 'object') return out;
  const p = problem as { detail?: string; title?: string; errors?: { location?: string; message?: string }[] | null };
  for (const err of p.errors ?? []) {
    const field = (err.location ?? '').replace(/^body\.?/, '');
    const msg = err.message ?? 'invalid';
    out[field] = out[field] ? `${out[field]}; ${msg}` : msg;
  }
  if (!p.errors?.length) out[''] = p.detail ?? p.title ?? 'The request was refused.';
  return out;
}
