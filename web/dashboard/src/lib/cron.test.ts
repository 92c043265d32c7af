import { describe, expect, it } from 'vitest';
import { describeSchedule, parseGoDuration, parseSchedule, validateSchedule } from './cron';

describe('describeSchedule', () => {
  it.each([
    ['* * * * *', 'Every minute'],
    ['*/15 * * * *', 'Every 15 minutes'],
    ['0 * * * *', 'Every hour, on the hour'],
    ['5 * * * *', 'At minute 5 past every hour'],
    ['0,30 * * * *', 'At minutes 0 and 30 past every hour'],
    ['30 2 * * *', 'At 02:30, every day'],
    ['0 0,12 * * *', 'At 00:00 and 12:00, every day'],
    ['0 9-17 * * 1-5', 'At minute 0, during hours 09 through 17, on Monday through Friday'],
    ['*/10 9-17 * * *', 'Every 10 minutes, during hours 09 through 17'],
    ['0 */2 * * *', 'At minute 0, every 2 hours'],
    ['15 3 1 * *', 'At 03:15, on day 1 of the month'],
    ['15 3 1,15 * *', 'At 03:15, on days 1 and 15 of the month'],
    ['0 4 * * sun', 'At 04:00, on Sunday'],
    ['0 4 * * MON,wed,FRI', 'At 04:00, on Monday, Wednesday and Friday'],
    ['0 0 1 JAN *', 'At 00:00, on day 1 of the month, in January'],
    ['0 0 1 */3 *', 'At 00:00, on day 1 of the month, every 3 months'],
    ['0 6 1 * 1', 'At 06:00, on day 1 of the month or on Monday'],
    ['0 6 ? * 1', 'At 06:00, on Monday'],
    ['20-40/10 * * * *', 'Every 10 minutes from 20 through 40'],
    ['@daily', 'At 00:00, every day'],
    ['@hourly', 'Every hour, on the hour'],
    ['@weekly', 'At 00:00 on Sunday'],
    ['@every 90m', 'Every 1 hour and 30 minutes, counted from the previous run'],
    ['@every 1h', 'Every 1 hour, counted from the previous run'],
    ['  30 2 * * *  ', 'At 02:30, every day'],
  ])('%s reads %s', (expr, want) => {
    expect(describeSchedule(expr)).toBe(want);
  });
});

describe('validateSchedule', () => {
  it.each([
    ['', 'empty expression'],
    ['* * * *', '4 fields'],
    ['60 * * * *', 'minute field: 60 is above the maximum 59'],
    ['* 24 * * *', 'hour field: 24 is above the maximum 23'],
    ['* * 0 * *', 'day-of-month field: 0 is below the minimum 1'],
    ['* * * 13 *', 'month field: 13 is above the maximum 12'],
    ['* * * * 7', 'day-of-week field: 7 is above the maximum 6'],
    ['5-1 * * * *', 'minute field: range "5-1" starts after it ends'],
    ['*/0 * * * *', 'minute field: the step in "*/0" must be a positive number'],
    ['x * * * *', 'minute field: "x" is not a number'],
    ['1,,2 * * * *', 'minute field: empty item'],
    ['@often', 'unknown descriptor @often'],
    ['@every 500ms', '@every needs at least 1s between runs'],
    ['@every soon', '@every needs a duration'],
    ['CRON_TZ=UTC 0 0 * * *', 'time zone field'],
  ])('%j is refused: %s', (expr, want) => {
    expect(validateSchedule(expr)).toContain(want);
  });

  it('accepts what the daemon accepts', () => {
    for (const e of ['0 0 * * *', '@every 1s', '@annually', '@midnight', '5/15 * * * *', '0 0 * jan-mar mon-fri', '*/1 * * * *']) {
      expect(validateSchedule(e), e).toBeUndefined();
    }
  });

  it('keeps robfig star semantics for day fields', () => {
    const p = parseSchedule('0 0 */2 * 1');
    expect(p.kind === 'cron' && [p.dom.star, p.dow.star]).toEqual([false, false]);
    const q = parseSchedule('5/15 * * * *');
    expect(q.kind === 'cron' && q.minute.items).toEqual([{ start: 5, end: 59, step: 15 }]);
  });
});

describe('parseGoDuration', () => {
  it.each([
    ['1h30m', 5_400_000],
    ['90s', 90_000],
    ['1.5h', 5_400_000],
    ['250ms', 250],
    ['0', 0],
  ])('%s is %d ms', (text, ms) => expect(parseGoDuration(text)).toBe(ms));
  it.each(['', '10', 'h', '1x', '1h 30m', '-1s'])('%j is not a duration', (text) => expect(parseGoDuration(text)).toBeUndefined());
});
