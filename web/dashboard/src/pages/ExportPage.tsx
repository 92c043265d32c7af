import { useEffect, useId, useMemo, useState, type ReactNode } from "react";
import { useMutation } from "@tanstack/react-query";
import { Link, useNavigate, useSearchParams } from "react-router";
import { api, ApiError, fieldErrors, unwrap, type Schemas } from "../api/client";
import { useCan } from "../auth/principal";
import { useProviders } from "../api/queries";
import { ErrorNote, Loading } from "../components/States";
import {
  emptyExportForm,
  hyperctlCommand,
  validateExport,
  type ExportFormValues,
  type FieldErrors,
  type ProviderCaps,
} from "../lib/exportForm";

type ProviderInfo = Schemas["ProviderInfo"];

export function capsOf(p: ProviderInfo | undefined): ProviderCaps | undefined {
  if (!p) return undefined;
  const c = p.capabilities;
  return {
    formats: c.formats ?? [],
    diskFormats: c.disk_formats ?? [],
    compression: c.compression ?? [],
    supportsSnapshot: c.supports_snapshot,
    supportsPowerOff: c.supports_power_off,
    methods: p.methods ?? [],
  };
}

export default function ExportPage() {
  const canSubmit = useCan("operator");
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const providers = useProviders();
  const [v, setV] = useState<ExportFormValues>(() => ({
    ...emptyExportForm,
    provider: params.get("provider") ?? "",
    vm: params.get("vm") ?? "",
  }));
  const [errors, setErrors] = useState<FieldErrors>({});
  const [copied, setCopied] = useState(false);
  useEffect(() => {
    if (!v.provider && providers.data?.[0]) setV((old) => ({ ...old, provider: providers.data[0]!.name }));
  }, [providers.data, v.provider]);

  const provider = providers.data?.find((p) => p.name === v.provider);
  const caps = capsOf(provider);
  const command = useMemo(() => hyperctlCommand(v), [v]);

  const submit = useMutation({
    mutationFn: async (body: Schemas["JobRequest"]) =>
      unwrap(await api.POST("/api/v1/jobs", { body, headers: { "Idempotency-Key": crypto.randomUUID() } })),
    onSuccess: (job) => navigate(`/jobs/${job.id}`),
    onError: (err) => {
      if (err instanceof ApiError) {
        const fe = fieldErrors(err.problem);
        if (Object.keys(fe).length > 0) setErrors(fe as FieldErrors);
      }
    },
  });

  function update<K extends keyof ExportFormValues>(k: K, value: ExportFormValues[K]) {
    setV((old) => ({ ...old, [k]: value }));
  }

  function onSubmit(e: React.FormEvent) {
    e.preventDefault();
    const r = validateExport(v, caps);
    setErrors(r.errors);
    if (!r.request) {
      // Move focus to the first field in error, for keyboard and screen reader users.
      const first = document.querySelector<HTMLElement>('[aria-invalid="true"]');
      first?.focus();
      return;
    }
    submit.mutate(r.request);
  }

  // A refusal naming fields shows on them; any other refusal shows here.
  const showSubmitError = submit.isError && !(submit.error instanceof ApiError && Object.keys(fieldErrors(submit.error.problem)).length > 0);

  return (
    <section>
      <h1>Export a VM</h1>
      {!canSubmit && (
        <div className="alert alert-info" role="status">
          Your token has the viewer role: it can read but not submit exports. The command below does the same with an operator token.
        </div>
      )}
      {providers.isPending && <Loading what="providers" />}
      {providers.isError && <ErrorNote error={providers.error} />}
      <form onSubmit={onSubmit} noValidate aria-label="Export" className="export-form">
        <div className="export-grid">
          <fieldset>
            <legend>What</legend>
            <Field label="Provider" name="provider" error={errors.provider}>
              {(p) => (
                <select {...p} value={v.provider} onChange={(e) => setV({ ...v, provider: e.target.value, method: "" })}>
                  {(providers.data ?? []).map((x) => (
                    <option key={x.name} value={x.name}>
                      {x.name} ({x.type})
                    </option>
                  ))}
                </select>
              )}
            </Field>
            <Field label="VM" name="vm" error={errors.vm} hint="Inventory path, name, ID or UUID">
              {(p) => <input {...p} value={v.vm} onChange={(e) => update("vm", e.target.value)} spellCheck={false} />}
            </Field>
            <Field label="Output directory" name="output" error={errors.output} hint="On the daemon's host: relative to its export directory, or absolute under export.allowed_roots. Empty: <export dir>/<job id>.">
              {(p) => <input {...p} value={v.output} onChange={(e) => update("output", e.target.value)} spellCheck={false} />}
            </Field>
            {caps && caps.methods.length > 1 && (
              <Field label="Method" name="method" error={errors.method} hint="How the provider gets the VM out">
                {(p) => (
                  <select {...p} value={v.method} onChange={(e) => update("method", e.target.value)}>
                    <option value="">Provider default ({caps.methods[0]})</option>
                    {caps.methods.map((m) => (
                      <option key={m} value={m}>
                        {m}
                      </option>
                    ))}
                  </select>
                )}
              </Field>
            )}
          </fieldset>

          <fieldset>
            <legend>Packaging</legend>
            <Field label="Format" name="format" error={errors.format}>
              {(p) => (
                <select {...p} value={v.format} onChange={(e) => update("format", e.target.value as ExportFormValues["format"])}>
                  <option value="">Daemon default</option>
                  {(caps?.formats ?? ["ovf", "ova", "disks"]).map((f) => (
                    <option key={f} value={f}>
                      {f === "ovf" ? "OVF folder" : f === "ova" ? "OVA archive" : f === "disks" ? "Plain disks + manifest" : f}
                    </option>
                  ))}
                </select>
              )}
            </Field>
            <Field label="Disk format" name="disk_format" error={errors.disk_format} hint="OVF and OVA carry VMDK; raw, qcow2, vhd and vhdx need the disks format">
              {(p) => (
                <select {...p} value={v.diskFormat} onChange={(e) => update("diskFormat", e.target.value as ExportFormValues["diskFormat"])}>
                  <option value="">Daemon default</option>
                  {(caps?.diskFormats ?? ["vmdk", "raw", "qcow2", "vhd", "vhdx"]).map((f) => (
                    <option key={f} value={f}>
                      {f}
                    </option>
                  ))}
                </select>
              )}
            </Field>
            {v.diskFormat === "vhd" && (
              <Field label="VHD type" name="vhd_type" error={errors.vhd_type}>
                {(p) => (
                  <select {...p} value={v.vhdType} onChange={(e) => update("vhdType", e.target.value as ExportFormValues["vhdType"])}>
                    <option value="">Default (dynamic)</option>
                    <option value="dynamic">dynamic</option>
                    <option value="fixed">fixed (Azure)</option>
                  </select>
                )}
              </Field>
            )}
            {v.format === "ova" && (
              <>
                <Field label="Compression" name="compress" error={errors.compress ?? errors.compression}>
                  {(p) => (
                    <select {...p} value={v.compression} onChange={(e) => update("compression", e.target.value as ExportFormValues["compression"])}>
                      <option value="">Daemon default</option>
                      <option value="none">None</option>
                      {(caps?.compression.length ? caps.compression : ["gzip", "zstd"]).map((c) => (
                        <option key={c} value={c}>
                          {c}
                        </option>
                      ))}
                    </select>
                  )}
                </Field>
                {(v.compression === "gzip" || v.compression === "zstd") && (
                  <Field label="Compression level" name="compression_level" error={errors.compression_level} hint="0–9; empty for the default">
                    {(p) => <input {...p} inputMode="numeric" value={v.compressionLevel} onChange={(e) => update("compressionLevel", e.target.value)} />}
                  </Field>
                )}
                <Field label="OVF files after packing" name="cleanup_ovf" error={errors.cleanup_ovf}>
                  {(p) => (
                    <select {...p} value={v.ovfFiles} onChange={(e) => update("ovfFiles", e.target.value as ExportFormValues["ovfFiles"])}>
                      <option value="">Daemon default</option>
                      <option value="cleanup">Remove them</option>
                      <option value="keep">Keep them next to the OVA</option>
                    </select>
                  )}
                </Field>
              </>
            )}
          </fieldset>

          <fieldset>
            <legend>A running VM</legend>
            <div role="radiogroup" aria-label="Consistency" className="field">
              <Radio name="consistency" value="none" checked={v.consistency === "none"} onChange={() => update("consistency", "none")} label="Export as it is" />
              <Radio
                name="consistency"
                value="snapshot"
                checked={v.consistency === "snapshot"}
                disabled={caps ? !caps.supportsSnapshot : false}
                onChange={() => update("consistency", "snapshot")}
                label="From a temporary snapshot"
              />
              <Radio
                name="consistency"
                value="power-off"
                checked={v.consistency === "power-off"}
                disabled={caps ? !caps.supportsPowerOff : false}
                onChange={() => update("consistency", "power-off")}
                label="Shut it down first"
              />
              {(errors.snapshot || errors.power_off) && <span className="error">{errors.snapshot ?? errors.power_off}</span>}
            </div>
            {v.consistency === "power-off" && (
              <Field label="Shutdown timeout" name="power_off_timeout" error={errors.power_off_timeout} hint="Guest shutdown wait before a hard power-off, e.g. 5m">
                {(p) => <input {...p} value={v.powerOffTimeout} onChange={(e) => update("powerOffTimeout", e.target.value)} />}
              </Field>
            )}
          </fieldset>

          <fieldset>
            <legend>Limits</legend>
            <Field label="Parallel disk downloads" name="parallel_downloads" error={errors.parallel_downloads} hint="1–32; empty for the daemon's default">
              {(p) => <input {...p} inputMode="numeric" value={v.parallel} onChange={(e) => update("parallel", e.target.value)} />}
            </Field>
            <Field label="Bandwidth limit" name="bandwidth_limit" error={errors.bandwidth_limit} hint="Per second, e.g. 50MiB; empty for unlimited">
              {(p) => <input {...p} value={v.bandwidthLimit} onChange={(e) => update("bandwidthLimit", e.target.value)} />}
            </Field>
            <Field label="Max attempts" name="max_attempts" error={errors.max_attempts} hint="1–100; empty for the daemon's default">
              {(p) => <input {...p} inputMode="numeric" value={v.maxAttempts} onChange={(e) => update("maxAttempts", e.target.value)} />}
            </Field>
          </fieldset>
        </div>

        {errors[""] && (
          <div className="alert" role="alert">
            {errors[""]}
          </div>
        )}
        {showSubmitError && <ErrorNote error={submit.error} />}
        {Object.keys(errors).length > 0 && (
          <p className="error-summary" role="alert">
            Fix the fields marked above.
          </p>
        )}

        <div className="card">
          <h2 id="cmd-title">Equivalent command</h2>
          <pre className="codeblock" aria-labelledby="cmd-title" data-testid="hyperctl-command">
            {command}
          </pre>
          <div className="row">
            <button
              type="button"
              className="btn"
              onClick={() => {
                void navigator.clipboard?.writeText(command).then(() => setCopied(true));
              }}
            >
              {copied ? "Copied" : "Copy command"}
            </button>
            <span className="spacer" />
            <Link to="/jobs" className="btn">
              Jobs
            </Link>
            {canSubmit && (
              <button type="submit" className="btn btn-primary" disabled={submit.isPending}>
                {submit.isPending ? "Submitting…" : "Start export"}
              </button>
            )}
          </div>
        </div>
      </form>
    </section>
  );
}

interface ControlProps {
  id: string;
  name: string;
  "aria-invalid"?: boolean;
  "aria-describedby"?: string;
}

/** Field: a label, a control, its hint and its error, wired for assistive tech. */
function Field({ label, name, error, hint, children }: { label: string; name: string; error?: string; hint?: string; children: (p: ControlProps) => ReactNode }) {
  const id = useId();
  const describedBy = [hint ? `${id}-hint` : "", error ? `${id}-err` : ""].filter(Boolean).join(" ") || undefined;
  return (
    <div className="field" data-field={name}>
      <label htmlFor={id}>{label}</label>
      {children({ id, name, "aria-invalid": error ? true : undefined, "aria-describedby": describedBy })}
      {hint && (
        <span className="hint" id={`${id}-hint`}>
          {hint}
        </span>
      )}
      {error && (
        <span className="error" id={`${id}-err`}>
          {error}
        </span>
      )}
    </div>
  );
}

function Radio({ name, value, checked, disabled, onChange, label }: { name: string; value: string; checked: boolean; disabled?: boolean; onChange: () => void; label: string }) {
  const id = useId();
  return (
    <div className="check">
      <input type="radio" id={id} name={name} value={value} checked={checked} disabled={disabled} onChange={onChange} />
      <label htmlFor={id}>
        {label}
        {disabled && <span className="muted small"> (not offered by this provider)</span>}
      </label>
    </div>
  );
}
