// Reading of the schedule expressions the daemon accepts (daemon/scheduler:
// robfig/cron's standard parser with descriptors): five fields, a
// descriptor such as @daily, or "@every <Go duration>".
//
// It mirrors the parser's grammar so that a form can refuse a bad
// expression before the round trip; the daemon stays the judge (its preview
// endpoint also refuses expressions that never fire, such as 30 February).

/** One comma-separated item of a field: start-end/step. */
export interface CronItem {
  start: number;
  end: number;
  step: number;
}

/** A parsed field; star is robfig's star bit (a bare * or ?), which decides
 * whether day-of-month and day-of-week combine with AND or OR. */
export interface CronField {
  items: CronItem[];
  star: boolean;
}

export type ParsedSchedule =
  | { kind: 'cron'; minute: CronField; hour: CronField; dom: CronField; month: CronField; dow: CronField }
  | { kind: 'descriptor'; name: string }
  | { kind: 'every'; ms: number };

export class CronError extends Error {}

interface Bounds {
  name: string;
  min: number;
  max: number;
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'] as const;
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'] as const;

const MINUTE: Bounds = { name: 'minute', min: 0, max: 59 };
const HOUR: Bounds = { name: 'hour', min: 0, max: 23 };
const DOM: Bounds = { name: 'day-of-month', min: 1, max: 31 };
const MONTH: Bounds = { name: 'month', min: 1, max: 12 };
const DOW: Bounds = { name: 'day-of-week', min: 0, max: 6 };

const DESCRIPTORS = ['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly'] as const;

/** The form the daemon names in its own error message. */
export const EXPECTED_FORM =
  "5 fields: minute hour day-of-month month day-of-week (e.g. '30 2 * * *'), a descriptor (@daily, @hourly, …) or @every <duration> (e.g. @every 30m)";

function nameValue(b: Bounds, s: string): number | undefined {
  const lower = s.toLowerCase();
  if (b.name === 'month') {
    const i = MONTHS.findIndex((m) => m.slice(0, 3).toLowerCase() === lower);
    return i < 0 ? undefined : i + 1;
  }
  if (b.name === 'day-of-week') {
    const i = DAYS.findIndex((d) => d.slice(0, 3).toLowerCase() === lower);
    return i < 0 ? undefined : i;
  }
  return undefined;
}

function value(b: Bounds, s: string): number {
  const named = nameValue(b, s);
  if (named !== undefined) return named;
  if (!/^\d+$/.test(s)) throw new CronError(`${b.name} field: ${JSON.stringify(s)} is not a number`);
  return Number(s);
}

function parseItem(b: Bounds, expr: string): { item: CronItem; star: boolean } {
  const [range = '', stepText, extra] = expr.split('/');
  if (extra !== undefined) throw new CronError(`${b.name} field: too many slashes in ${JSON.stringify(expr)}`);
  const [low = '', high, more] = range.split('-');
  if (more !== undefined) throw new CronError(`${b.name} field: too many hyphens in ${JSON.stringify(expr)}`);
  let start: number;
  let end: number;
  let star = false;
  if (low === '*' || low === '?') {
    if (high !== undefined) throw new CronError(`${b.name} field: * cannot start a range`);
    [start, end, star] = [b.min, b.max, true];
  } else {
    start = value(b, low);
    end = high === undefined ? start : value(b, high);
  }
  let step = 1;
  if (stepText !== undefined) {
    if (!/^\d+$/.test(stepText) || Number(stepText) === 0) {
      throw new CronError(`${b.name} field: the step in ${JSON.stringify(expr)} must be a positive number`);
    }
    step = Number(stepText);
    if (high === undefined && !star) end = b.max; // "5/15" means 5-max/15
    if (step > 1) star = false;
  }
  if (start < b.min) throw new CronError(`${b.name} field: ${start} is below the minimum ${b.min}`);
  if (end > b.max) throw new CronError(`${b.name} field: ${end} is above the maximum ${b.max}`);
  if (start > end) throw new CronError(`${b.name} field: range ${JSON.stringify(expr)} starts after it ends`);
  return { item: { start, end, step }, star };
}

function parseField(b: Bounds, expr: string): CronField {
  let star = false;
  const items = expr.split(',').map((part) => {
    if (part === '') throw new CronError(`${b.name} field: empty item in ${JSON.stringify(expr)}`);
    const r = parseItem(b, part);
    star ||= r.star;
    return r.item;
  });
  return { items, star };
}

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a Go duration (time.ParseDuration: "1h30m", "90s", "1.5h") into
 * milliseconds; undefined when it is not one. */
export function parseGoDuration(text: string): number | undefined {
  const s = text.trim();
  if (s === '0') return 0;
  const re = /(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/gy;
  let total = 0;
  let pos = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? NaN);
    pos = re.lastIndex;
  }
  return pos === s.length && pos > 0 ? total : undefined;
}

/** Parses an expression as the daemon does; throws CronError naming the
 * field at fault. */
export function parseSchedule(text: string): ParsedSchedule {
  const expr = text.trim();
  if (expr === '') throw new CronError('empty expression');
  if (expr.startsWith('CRON_TZ=') || expr.startsWith('TZ=')) {
    throw new CronError('give the time zone in the time zone field, not in the expression');
  }
  if (expr.startsWith('@')) {
    if (expr.startsWith('@every ')) {
      const ms = parseGoDuration(expr.slice('@every '.length));
      if (ms === undefined) throw new CronError(`@every needs a duration such as 30m, 1h30m or 90s`);
      if (ms < 1000) throw new CronError('@every needs at least 1s between runs');
      return { kind: 'every', ms };
    }
    const name = expr.toLowerCase();
    if (!(DESCRIPTORS as readonly string[]).includes(name)) throw new CronError(`unknown descriptor ${expr}; use ${EXPECTED_FORM}`);
    return { kind: 'descriptor', name };
  }
  const fields = expr.split(/\s+/);
  if (fields.length !== 5) throw new CronError(`${fields.length} fields; use ${EXPECTED_FORM}`);
  const [minute = '', hour = '', dom = '', month = '', dow = ''] = fields;
  return {
    kind: 'cron',
    minute: parseField(MINUTE, minute),
    hour: parseField(HOUR, hour),
    dom: parseField(DOM, dom),
    month: parseField(MONTH, month),
    dow: parseField(DOW, dow),
  };
}

/** The error message for an expression, or undefined when it parses. */
export function validateSchedule(text: string): string | undefined {
  try {
    parseSchedule(text);
    return undefined;
  } catch (e) {
    if (e instanceof CronError) return e.message;
    throw e;
  }
}

// ---- human reading ----

const pad2 = (n: number) => String(n).padStart(2, '0');

function list(words: string[]): string {
  if (words.length <= 1) return words.join('');
  return `${words.slice(0, -1).join(', ')} and ${words[words.length - 1]}`;
}

function isFull(f: CronField, b: Bounds): boolean {
  return f.items.some((i) => i.start === b.min && i.end === b.max && i.step === 1);
}

function singles(f: CronField): number[] | undefined {
  return f.items.every((i) => i.start === i.end) ? f.items.map((i) => i.start) : undefined;
}

const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;

/** Text of a field's items: "1, 15 and 20", "Monday through Friday", "every 2 hours from 08 through 18". */
function itemsText(f: CronField, b: Bounds, fmt: (n: number) => string, unit: string): string {
  return list(
    f.items.map((i) => {
      if (i.step > 1) {
        const from = i.start === b.min && i.end === b.max ? '' : ` from ${fmt(i.start)} through ${fmt(i.end)}`;
        return `every ${plural(i.step, unit)}${from}`;
      }
      return i.start === i.end ? fmt(i.start) : `${fmt(i.start)} through ${fmt(i.end)}`;
    }),
  );
}

function timeText(minute: CronField, hour: CronField): string {
  const [mb, hb] = [MINUTE, HOUR];
  const ms = singles(minute);
  const hs = singles(hour);
  if (ms && hs && ms.length * hs.length <= 6) {
    const times = hs.flatMap((h) => ms.map((m) => `${pad2(h)}:${pad2(m)}`));
    return `At ${list(times)}`;
  }
  const hourFull = isFull(hour, hb);
  const minuteFull = isFull(minute, mb);
  let m: string;
  if (minuteFull) m = 'Every minute';
  else if (ms) m = ms.length === 1 && ms[0] === 0 && hourFull ? 'Every hour, on the hour' : `At minute${ms.length === 1 ? '' : 's'} ${list(ms.map(String))}`;
  else {
    const t = itemsText(minute, mb, String, 'minute');
    m = t.startsWith('every') ? t.charAt(0).toUpperCase() + t.slice(1) : `At minutes ${t}`;
  }
  if (hourFull) return ms && !(ms.length === 1 && ms[0] === 0) ? `${m} past every hour` : m;
  const h = itemsText(hour, hb, pad2, 'hour');
  return h.startsWith('every') ? `${m}, ${h}` : `${m}, during hour${hs?.length === 1 ? '' : 's'} ${h}`;
}

function dayText(p: Extract<ParsedSchedule, { kind: 'cron' }>): string {
  const [db, mob, dwb] = [DOM, MONTH, DOW];
  const parts: string[] = [];
  const domRestricted = !isFull(p.dom, db) || !p.dom.star;
  const dowRestricted = !isFull(p.dow, dwb) || !p.dow.star;
  const one = singles(p.dom)?.length === 1;
  const domText = `on ${one ? 'day' : 'days'} ${itemsText(p.dom, db, String, 'day')} of the month`.replace(
    /^on days? every/,
    'every',
  );
  const dowText = `on ${itemsText(p.dow, dwb, (n) => DAYS[n] ?? String(n), 'day')}`.replace(/^on every (\d+) days?/, 'every $1 days of the week');
  // robfig: with either day field a bare *, both must match; otherwise either may.
  if (domRestricted && dowRestricted) {
    parts.push(p.dom.star || p.dow.star ? `${domText} and ${dowText}` : `${domText} or ${dowText}`);
  } else if (domRestricted) parts.push(domText);
  else if (dowRestricted) parts.push(dowText);
  if (!isFull(p.month, mob)) {
    const t = itemsText(p.month, mob, (n) => MONTHS[n - 1] ?? String(n), 'month');
    parts.push(t.startsWith('every') ? t : `in ${t}`);
  }
  return parts.join(', ');
}

function durationText(ms: number): string {
  const units: [number, string][] = [
    [86_400_000, 'day'],
    [3_600_000, 'hour'],
    [60_000, 'minute'],
    [1000, 'second'],
  ];
  const out: string[] = [];
  let rest = ms;
  for (const [size, name] of units) {
    const n = Math.floor(rest / size);
    if (n > 0) out.push(plural(n, name));
    rest -= n * size;
  }
  if (rest > 0) out.push(plural(Math.round(rest), 'millisecond'));
  return list(out);
}

const DESCRIPTOR_TEXT: Record<string, string> = {
  '@yearly': 'At 00:00 on 1 January',
  '@annually': 'At 00:00 on 1 January',
  '@monthly': 'At 00:00 on day 1 of the month',
  '@weekly': 'At 00:00 on Sunday',
  '@daily': 'At 00:00, every day',
  '@midnight': 'At 00:00, every day',
  '@hourly': 'Every hour, on the hour',
};

/** A human reading of an expression, e.g. "At 02:30, on Monday through
 * Friday". Throws CronError for an invalid one. */
export function describeSchedule(text: string): string {
  const p = parseSchedule(text);
  switch (p.kind) {
    case 'descriptor':
      return DESCRIPTOR_TEXT[p.name] ?? p.name;
    case 'every':
      return `Every ${durationText(p.ms)}, counted from the previous run`;
    case 'cron': {
      const time = timeText(p.minute, p.hour);
      const days = dayText(p);
      if (days) return `${time}, ${days}`;
      return time.startsWith('At ') && singles(p.hour) ? `${time}, every day` : time;
    }
  }
}
