// The export form's model: what the person typed, the checks the daemon
// would make (so mistakes show on the field before a round trip), the
// request body, and the equivalent hyperctl command.
//
// The rules mirror daemon/jobs ResolveOptions and pipeline.OptionProblems;
// the daemon stays the authority (its 422 field errors are shown on the
// same fields).

export type Format = "" | "ovf" | "ova" | "disks";
export type DiskFormat = "" | "vmdk" | "raw" | "qcow2" | "vhd" | "vhdx";

export interface ExportFormValues {
  provider: string;
  vm: string;
  output: string;
  format: Format;
  diskFormat: DiskFormat;
  vhdType: "" | "dynamic" | "fixed";
  method: string;
  /** "" = the daemon's default, "none" = uncompressed, or a codec. */
  compression: "" | "none" | "gzip" | "zstd";
  compressionLevel: string;
  /** "" = the daemon's default (export.cleanup_ovf), "cleanup" or "keep". */
  ovfFiles: "" | "cleanup" | "keep";
  /** "none", "snapshot" or "power-off": the two exclude each other. */
  consistency: "none" | "snapshot" | "power-off";
  powerOffTimeout: string;
  parallel: string;
  bandwidthLimit: string;
  maxAttempts: string;
}

export const emptyExportForm: ExportFormValues = {
  provider: "",
  vm: "",
  output: "",
  format: "",
  diskFormat: "",
  vhdType: "",
  method: "",
  compression: "",
  compressionLevel: "",
  ovfFiles: "",
  consistency: "none",
  powerOffTimeout: "",
  parallel: "",
  bandwidthLimit: "",
  maxAttempts: "",
};

/** What the chosen provider supports (its capabilities and methods). */
export interface ProviderCaps {
  formats: string[];
  diskFormats: string[];
  compression: string[];
  supportsSnapshot: boolean;
  supportsPowerOff: boolean;
  methods: string[];
}

/** Request body fields of POST /api/v1/jobs (apitypes.JobRequest). */
export interface ExportRequest {
  provider: string;
  vm: string;
  output?: string;
  format?: "ovf" | "ova" | "disks";
  disk_format?: "vmdk" | "raw" | "qcow2" | "vhd" | "vhdx";
  vhd_type?: "dynamic" | "fixed";
  compress?: boolean;
  compression?: "gzip" | "zstd";
  compression_level?: number;
  cleanup_ovf?: boolean;
  parallel_downloads?: number;
  snapshot?: boolean;
  power_off?: boolean;
  power_off_timeout?: string;
  bandwidth_limit?: number;
  method?: string;
  max_attempts?: number;
}

/** Field errors keyed by request field name, as the daemon names them. */
export type FieldErrors = Partial<Record<keyof ExportRequest | "", string>>;

const sizeUnits: Record<string, number> = {
  "": 1, B: 1,
  K: 2 ** 10, KIB: 2 ** 10, KB: 1e3,
  M: 2 ** 20, MIB: 2 ** 20, MB: 1e6,
  G: 2 ** 30, GIB: 2 ** 30, GB: 1e9,
  T: 2 ** 40, TIB: 2 ** 40, TB: 1e12,
};

/** parseSize reads "50MiB", "100MB", "1048576" like hyperctl's --bandwidth-limit. */
export function parseSize(s: string): number | null {
  const t = s.trim().replace(/\/s$/, "").trim();
  const m = /^(\d+(?:\.\d+)?|\.\d+)\s*([A-Za-z]*)$/.exec(t);
  if (!m) return null;
  const mult = sizeUnits[m[2]!.toUpperCase()];
  if (mult === undefined) return null;
  return Math.floor(Number(m[1]) * mult);
}

const durationRe = /^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/;

/** isPositiveDuration accepts Go durations such as 5m, 90s, 1h30m. */
export function isPositiveDuration(s: string): boolean {
  return durationRe.test(s) && /[1-9]/.test(s);
}

function intIn(s: string, lo: number, hi: number): number | null {
  if (!/^\d+$/.test(s.trim())) return null;
  const n = Number(s.trim());
  return n >= lo && n <= hi ? n : null;
}

/**
 * validateExport returns the problems of v, keyed by request field, and
 * the request body when there are none.
 */
export function validateExport(v: ExportFormValues, caps?: ProviderCaps): { errors: FieldErrors; request?: ExportRequest } {
  const e: FieldErrors = {};
  if (!v.provider.trim()) e.provider = "Choose a provider.";
  if (!v.vm.trim()) e.vm = "Name the VM: its inventory path, name, ID or UUID.";
  else if (v.vm.length > 1024) e.vm = "At most 1024 characters.";
  if (v.output.length > 4096) e.output = "At most 4096 characters.";
  else if (v.output.includes("\0")) e.output = "Must not contain a NUL byte.";

  if (caps && v.format && !caps.formats.includes(v.format)) e.format = `This provider exports ${caps.formats.join(", ")}.`;
  if (v.diskFormat) {
    if (caps && !caps.diskFormats.includes(v.diskFormat)) e.disk_format = `This provider writes ${caps.diskFormats.join(", ")} disks.`;
    else if (v.diskFormat !== "vmdk" && v.format !== "disks")
      e.disk_format = `${v.diskFormat} disks are exported only as plain disks (format disks): OVF packages carry streamOptimized VMDK disks.`;
  }
  if (v.vhdType && v.diskFormat !== "vhd") e.vhd_type = "Only for vhd disks.";

  const compressing = v.compression === "gzip" || v.compression === "zstd";
  if (compressing && v.format !== "ova") e.compress = "Only OVA exports are compressed.";
  if (compressing && caps && caps.compression.length > 0 && !caps.compression.includes(v.compression))
    e.compression = `This provider compresses with ${caps.compression.join(", ")}.`;
  let level: number | undefined;
  if (v.compressionLevel.trim()) {
    const n = intIn(v.compressionLevel, 0, 9);
    if (n === null) e.compression_level = "A whole number from 0 to 9.";
    else if (!compressing) e.compression_level = "Only with gzip or zstd compression.";
    else level = n;
  }
  if (v.ovfFiles && v.format !== "ova") e.cleanup_ovf = "Only for OVA exports.";

  if (v.consistency === "snapshot" && caps && !caps.supportsSnapshot) e.snapshot = "This provider cannot export from a snapshot.";
  if (v.consistency === "power-off" && caps && !caps.supportsPowerOff) e.power_off = "This provider cannot power the VM off.";
  if (v.powerOffTimeout.trim()) {
    if (v.consistency !== "power-off") e.power_off_timeout = "Only with power-off.";
    else if (!isPositiveDuration(v.powerOffTimeout.trim())) e.power_off_timeout = "A positive duration such as 5m or 90s.";
  }
  if (v.method && caps && caps.methods.length > 0 && !caps.methods.includes(v.method))
    e.method = `This provider offers ${caps.methods.join(", ")}.`;

  let parallel: number | undefined;
  if (v.parallel.trim()) {
    const n = intIn(v.parallel, 1, 32);
    if (n === null) e.parallel_downloads = "A whole number from 1 to 32.";
    else parallel = n;
  }
  let bandwidth: number | undefined;
  if (v.bandwidthLimit.trim()) {
    const n = parseSize(v.bandwidthLimit);
    if (n === null) e.bandwidth_limit = "A size per second such as 50MiB, 100MB or 1048576.";
    else bandwidth = n;
  }
  let attempts: number | undefined;
  if (v.maxAttempts.trim()) {
    const n = intIn(v.maxAttempts, 1, 100);
    if (n === null) e.max_attempts = "A whole number from 1 to 100.";
    else attempts = n;
  }
  if (Object.keys(e).length > 0) return { errors: e };

  const r: ExportRequest = { provider: v.provider.trim(), vm: v.vm.trim() };
  if (v.output.trim()) r.output = v.output.trim();
  if (v.format) r.format = v.format;
  if (v.diskFormat) r.disk_format = v.diskFormat;
  if (v.vhdType) r.vhd_type = v.vhdType;
  if (v.method) r.method = v.method;
  if (v.compression === "none") r.compress = false;
  if (compressing) {
    r.compress = true;
    r.compression = v.compression as "gzip" | "zstd";
  }
  if (level !== undefined) r.compression_level = level;
  if (v.ovfFiles) r.cleanup_ovf = v.ovfFiles === "cleanup";
  if (v.consistency === "snapshot") r.snapshot = true;
  if (v.consistency === "power-off") r.power_off = true;
  if (v.powerOffTimeout.trim()) r.power_off_timeout = v.powerOffTimeout.trim();
  if (parallel !== undefined) r.parallel_downloads = parallel;
  if (bandwidth !== undefined) r.bandwidth_limit = bandwidth;
  if (attempts !== undefined) r.max_attempts = attempts;
  return { errors: {}, request: r };
}

/** shellQuote quotes s for a POSIX shell when it needs quoting. */
export function shellQuote(s: string): string {
  if (s !== "" && /^[A-Za-z0-9_./:@%+=,-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * hyperctlCommand is the `hyperctl export` line submitting the same job
 * (flag names from cmd/hyperctl: addSubmitFlags); the bandwidth limit is
 * written as typed, which hyperctl parses the same way.
 */
export function hyperctlCommand(v: ExportFormValues): string {
  const a: string[] = ["hyperctl", "export"];
  const flag = (name: string, value?: string) => {
    a.push(`--${name}`);
    if (value !== undefined) a.push(shellQuote(value));
  };
  flag("provider", v.provider.trim() || "PROVIDER");
  flag("vm", v.vm.trim() || "VM");
  if (v.output.trim()) flag("output", v.output.trim());
  if (v.format) flag("format", v.format);
  if (v.diskFormat) flag("disk-format", v.diskFormat);
  if (v.vhdType) flag("vhd-type", v.vhdType);
  if (v.method) flag("method", v.method);
  if (v.compression === "gzip" || v.compression === "zstd") {
    flag("compress");
    flag("compression", v.compression);
  } else if (v.compression === "none") {
    a.push("--compress=false");
  }
  if (v.compressionLevel.trim()) flag("compression-level", v.compressionLevel.trim());
  if (v.ovfFiles === "cleanup") flag("cleanup-ovf");
  if (v.ovfFiles === "keep") flag("keep-ovf");
  if (v.consistency === "snapshot") flag("snapshot");
  if (v.consistency === "power-off") flag("power-off");
  if (v.powerOffTimeout.trim()) flag("power-off-timeout", v.powerOffTimeout.trim());
  if (v.parallel.trim()) flag("parallel", v.parallel.trim());
  if (v.bandwidthLimit.trim()) flag("bandwidth-limit", v.bandwidthLimit.trim());
  if (v.maxAttempts.trim()) flag("max-attempts", v.maxAttempts.trim());
  a.push("--wait");
  return a.join(" ");
}
