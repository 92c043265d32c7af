export function JobStateBadge({ state }: { state: string }) {
  return <span className={`badge state-${state}`}>{state}</span>;
}
