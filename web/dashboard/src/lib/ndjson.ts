/** parseNDJSON reads newline-delimited JSON, skipping blank lines. */
export function parseNDJSON<T>(text: string): T[] {
  const out: T[] = [];
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (t) out.push(JSON.parse(t) as T);
  }
  return out;
}
