import { describe, expect, it } from 'vitest';
import { emptyValues, problemFieldErrors, toPatch, toSpec, validate, valuesOf, type ScheduleLike } from './SchedulesModel';

const valid = { ...emptyValues('demo'), name: 'nightly-web01', vm: 'web-01' };

describe('validate', () => {
  it('accepts a complete form', () => {
    expect(validate(valid, true)).toEqual({});
  });
  it('names every bad field as the API does', () => {
    const e = validate(
      { ...valid, name: 'sch_x', schedule: '61 * * * *', timezone: 'Mars/Olympus', provider: '', vm: ' ', format: 'ova', diskFormat: 'qcow2', snapshot: true, powerOff: true, maxRuns: '0' },
      true,
    );
    expect(Object.keys(e).sort()).toEqual(['job.disk_format', 'job.power_off', 'job.provider', 'job.vm', 'max_runs', 'name', 'schedule', 'timezone']);
    expect(e.schedule).toContain('minute field: 61 is above the maximum 59');
    expect(e.timezone).toContain('Mars/Olympus');
  });
  it('checks the name pattern only when creating', () => {
    expect(validate({ ...valid, name: '-bad' }, true).name).toMatch(/starting with a letter or digit/);
    expect(validate({ ...valid, name: '-bad' }, false).name).toBeUndefined();
  });
  it('refuses the Local zone and accepts IANA zones', () => {
    expect(validate({ ...valid, timezone: 'Local' }, true).timezone).toMatch(/every host/);
    expect(validate({ ...valid, timezone: 'Europe/Berlin' }, true).timezone).toBeUndefined();
  });
  it('leaves a non-VMDK disk format to the daemon when the format is its default', () => {
    expect(validate({ ...valid, diskFormat: 'raw' }, true)['job.disk_format']).toBeUndefined();
  });
});

describe('request bodies', () => {
  it('builds the create body with only the options set', () => {
    expect(toSpec({ ...valid, format: 'ova', snapshot: true, maxRuns: '3', endAt: '' })).toEqual({
      name: 'nightly-web01',
      schedule: '0 2 * * *',
      timezone: 'UTC',
      job: { provider: 'demo', vm: 'web-01', format: 'ova', snapshot: true },
      enabled: true,
      overlap: 'skip',
      catch_up: 'once',
      max_runs: 3,
    });
  });
  it('keeps job options the form does not edit on update', () => {
    const current: ScheduleLike = {
      name: 'n',
      schedule: '@daily',
      timezone: 'UTC',
      job: { provider: 'demo', vm: 'web-01', compression: 'zstd', snapshot: true },
      enabled: true,
      overlap: 'skip',
      catch_up: 'once',
    };
    const v = { ...valuesOf(current), snapshot: false, schedule: '0 3 * * *' };
    const patch = toPatch(v, current);
    expect(patch.job).toEqual({ provider: 'demo', vm: 'web-01', compression: 'zstd' });
    expect(patch.schedule).toBe('0 3 * * *');
  });
  it('round-trips a schedule through the form', () => {
    const s: ScheduleLike = { name: 'x', schedule: '*/5 * * * *', timezone: 'Europe/Berlin', job: { provider: 'p', vm: 'v', format: 'disks', disk_format: 'qcow2' }, enabled: false, overlap: 'queue', catch_up: 'none', max_runs: 7 };
    const v = valuesOf(s);
    expect(v).toMatchObject({ format: 'disks', diskFormat: 'qcow2', enabled: false, overlap: 'queue', catchUp: 'none', maxRuns: '7' });
    expect(toSpec(v)).toMatchObject({ timezone: 'Europe/Berlin', job: s.job, max_runs: 7, enabled: false });
  });
});

describe('problemFieldErrors', () => {
  it('maps problem+json field errors to the form fields', () => {
    expect(
      problemFieldErrors({
        status: 422,
        detail: 'invalid request',
        errors: [
          { location: 'body.job.vm', message: 'no such VM' },
          { location: 'body.schedule', message: 'never fires' },
          { location: 'body.schedule', message: 'again' },
        ],
      }),
    ).toEqual({ 'job.vm': 'no such VM', schedule: 'never fires; again' });
  });
  it('puts a problem without fields under the empty key', () => {
    expect(problemFieldErrors({ status: 409, detail: 'a schedule named x exists' })).toEqual({ '': 'a schedule named x exists' });
  });
});
