import { useId, useMemo, useState } from "react";
import { useQuery } from "@tanstack/react-query";
import { Link, useNavigate, useParams, useSearchParams } from "react-router";
import { api, unwrap, type Schemas } from "../api/client";
import { useCan } from "../auth/principal";
import { useProviders } from "../api/queries";
import { ErrorNote, Loading } from "../components/States";
import { formatBytes } from "../lib/format";

type VM = Schemas["VMInfo"];

export function totalDiskBytes(vm: VM): number {
  return (vm.disks ?? []).reduce((n, d) => n + d.capacity_bytes, 0);
}

const powerStates = [
  { value: "", label: "Any" },
  { value: "poweredOn", label: "Powered on" },
  { value: "poweredOff", label: "Powered off" },
  { value: "suspended", label: "Suspended" },
] as const;

type PowerFilter = (typeof powerStates)[number]["value"];

export default function VmsPage() {
  const { provider, vm } = useParams();
  const providers = useProviders();
  const navigate = useNavigate();
  const id = useId();
  const current = provider ?? providers.data?.[0]?.name;

  return (
    <section>
      <h1>VMs</h1>
      {providers.isError && <ErrorNote error={providers.error} />}
      {providers.isPending ? (
        <Loading what="providers" />
      ) : (
        <div className="field narrow">
          <label htmlFor={`${id}-prov`}>Provider</label>
          <select
            id={`${id}-prov`}
            value={current ?? ""}
            onChange={(e) => navigate(`/vms/${encodeURIComponent(e.target.value)}`)}
          >
            {(providers.data ?? []).map((p) => (
              <option key={p.name} value={p.name}>
                {p.name} ({p.type})
              </option>
            ))}
          </select>
        </div>
      )}
      {current && vm ? <VmDetail provider={current} id={vm} /> : current ? <VmList provider={current} /> : null}
    </section>
  );
}

function VmList({ provider }: { provider: string }) {
  const [params, setParams] = useSearchParams();
  const q = params.get("q") ?? "";
  const power = (params.get("power") ?? "") as PowerFilter;
  const [text, setText] = useState(q);
  const id = useId();
  const vms = useQuery({
    queryKey: ["vms", provider, q],
    queryFn: async () =>
      unwrap(
        await api.GET("/api/v1/providers/{name}/vms", {
          params: { path: { name: provider }, query: q ? { q } : {} },
        }),
      ).items ?? [],
  });
  const shown = useMemo(() => (vms.data ?? []).filter((v) => !power || v.power_state === power), [vms.data, power]);

  function set(key: string, value: string) {
    const next = new URLSearchParams(params);
    if (value) next.set(key, value);
    else next.delete(key);
    setParams(next, { replace: true });
  }

  return (
    <>
      <form
        className="row"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          set("q", text.trim());
        }}
      >
        <div className="field">
          <label htmlFor={`${id}-q`}>Search</label>
          <input id={`${id}-q`} type="search" value={text} placeholder="name, path, guest OS, ID" onChange={(e) => setText(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-power`}>Power state</label>
          <select id={`${id}-power`} value={power} onChange={(e) => set("power", e.target.value)}>
            {powerStates.map((p) => (
              <option key={p.value} value={p.value}>
                {p.label}
              </option>
            ))}
          </select>
        </div>
        <button type="submit" className="btn">
          Search
        </button>
      </form>
      {vms.isPending ? (
        <Loading what="VMs" />
      ) : vms.isError ? (
        <ErrorNote error={vms.error} />
      ) : (
        <div className="card table-wrap">
          <table aria-label={`VMs of ${provider}`}>
            <thead>
              <tr>
                <th>Name</th>
                <th>Power</th>
                <th>Guest OS</th>
                <th className="num">CPUs</th>
                <th className="num">Memory</th>
                <th className="num">Disks</th>
                <th className="num">Size</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((v) => (
                <tr key={v.id}>
                  <td>
                    <Link to={`/vms/${encodeURIComponent(provider)}/${encodeURIComponent(v.id)}`}>{v.name}</Link>
                    {v.path && <div className="small muted">{v.path}</div>}
                  </td>
                  <td>
                    <span className={`badge power-${v.power_state}`}>{v.power_state}</span>
                  </td>
                  <td className="small">{v.guest_os || "—"}</td>
                  <td className="num">{v.cpus}</td>
                  <td className="num">{formatBytes(v.memory_mib * 2 ** 20)}</td>
                  <td className="num">{(v.disks ?? []).length}</td>
                  <td className="num">{formatBytes(totalDiskBytes(v))}</td>
                </tr>
              ))}
              {shown.length === 0 && (
                <tr>
                  <td colSpan={7} className="muted">
                    No VMs match.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

function VmDetail({ provider, id }: { provider: string; id: string }) {
  const canExport = useCan("operator");
  const vm = useQuery({
    queryKey: ["vm", provider, id],
    queryFn: async () => unwrap(await api.GET("/api/v1/providers/{name}/vms/{id}", { params: { path: { name: provider, id } } })),
  });
  if (vm.isPending) return <Loading what="the VM" />;
  if (vm.isError) return <ErrorNote error={vm.error} />;
  const v = vm.data;
  const exportTo = `/export?provider=${encodeURIComponent(provider)}&vm=${encodeURIComponent(v.path || v.id)}`;
  return (
    <div className="card">
      <div className="row">
        <h2>{v.name}</h2>
        <span className={`badge power-${v.power_state}`}>{v.power_state}</span>
        <span className="spacer" />
        <Link className="btn" to={`/vms/${encodeURIComponent(provider)}`}>
          Back to the list
        </Link>
        {canExport && (
          <Link className="btn btn-primary" to={exportTo}>
            Export this VM
          </Link>
        )}
      </div>
      <dl className="facts">
        <dt>ID</dt>
        <dd className="mono">{v.id}</dd>
        {v.path && (
          <>
            <dt>Path</dt>
            <dd className="mono">{v.path}</dd>
          </>
        )}
        {v.uuid && (
          <>
            <dt>UUID</dt>
            <dd className="mono">{v.uuid}</dd>
          </>
        )}
        <dt>Guest OS</dt>
        <dd>{v.guest_os || "—"}</dd>
        <dt>Firmware</dt>
        <dd>{v.firmware || "—"}</dd>
        <dt>CPUs · memory</dt>
        <dd>
          {v.cpus} · {formatBytes(v.memory_mib * 2 ** 20)}
        </dd>
      </dl>
      <h3>Disks</h3>
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th>Label</th>
              <th>Backing</th>
              <th>Provisioning</th>
              <th className="num">Capacity</th>
            </tr>
          </thead>
          <tbody>
            {(v.disks ?? []).map((d, i) => (
              <tr key={i}>
                <td>{d.label}</td>
                <td className="mono small">{d.path || "—"}</td>
                <td>{d.provisioning || "—"}</td>
                <td className="num">{formatBytes(d.capacity_bytes)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {(v.nics ?? []).length > 0 && (
        <>
          <h3>Network</h3>
          <ul>
            {(v.nics ?? []).map((n, i) => (
              <li key={i} className="small">
                {n.label}
                {n.network && ` · ${n.network}`}
                {n.type && ` · ${n.type}`}
                {n.mac && <span className="mono"> · {n.mac}</span>}
              </li>
            ))}
          </ul>
        </>
      )}
    </div>
  );
}
