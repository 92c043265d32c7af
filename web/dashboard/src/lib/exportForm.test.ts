import { describe, expect, it } from "vitest";
import { emptyExportForm, hyperctlCommand, isPositiveDuration, parseSize, shellQuote, validateExport, type ExportFormValues, type ProviderCaps } from "./exportForm";

const base: ExportFormValues = { ...emptyExportForm, provider: "demo", vm: "/DC0/vm/production/db/db-01" };

const vsphere: ProviderCaps = {
  formats: ["ovf", "ova", "disks"],
  diskFormats: ["vmdk", "raw", "qcow2", "vhd", "vhdx"],
  compression: ["gzip", "zstd"],
  supportsSnapshot: true,
  supportsPowerOff: true,
  methods: [],
};

describe("validateExport", () => {
  it("sends only what was chosen, so the daemon's defaults apply to the rest", () => {
    expect(validateExport(base, vsphere)).toEqual({ errors: {}, request: { provider: "demo", vm: "/DC0/vm/production/db/db-01" } });
  });

  it("requires a provider and a VM", () => {
    const r = validateExport({ ...base, provider: " ", vm: "" });
    expect(Object.keys(r.errors).sort()).toEqual(["provider", "vm"]);
    expect(r.request).toBeUndefined();
  });

  it("refuses non-VMDK disks outside the disks format, as the daemon does", () => {
    expect(validateExport({ ...base, format: "ova", diskFormat: "qcow2" }, vsphere).errors.disk_format).toMatch(/only as plain disks/);
    expect(validateExport({ ...base, diskFormat: "raw" }, vsphere).errors.disk_format).toMatch(/format disks/);
    expect(validateExport({ ...base, format: "disks", diskFormat: "qcow2" }, vsphere).request).toEqual({
      provider: "demo",
      vm: base.vm,
      format: "disks",
      disk_format: "qcow2",
    });
  });

  it("keeps the VHD type to vhd disks", () => {
    expect(validateExport({ ...base, format: "disks", diskFormat: "raw", vhdType: "fixed" }).errors.vhd_type).toBeDefined();
    expect(validateExport({ ...base, format: "disks", diskFormat: "vhd", vhdType: "fixed" }).request?.vhd_type).toBe("fixed");
  });

  it("compresses OVAs only, with a level from 0 to 9", () => {
    expect(validateExport({ ...base, format: "ovf", compression: "zstd" }).errors.compress).toMatch(/Only OVA/);
    expect(validateExport({ ...base, format: "ova", compression: "zstd", compressionLevel: "12" }).errors.compression_level).toBeDefined();
    expect(validateExport({ ...base, format: "ova", compression: "gzip", compressionLevel: "x" }).errors.compression_level).toBeDefined();
    expect(validateExport({ ...base, format: "ova", compressionLevel: "3" }).errors.compression_level).toMatch(/Only with/);
    expect(validateExport({ ...base, format: "ova", compression: "zstd", compressionLevel: "3" }).request).toMatchObject({
      compress: true,
      compression: "zstd",
      compression_level: 3,
    });
    expect(validateExport({ ...base, format: "ova", compression: "none" }).request?.compress).toBe(false);
  });

  it("offers only the codecs and formats the provider has", () => {
    const caps = { ...vsphere, formats: ["ovf", "ova"], compression: ["gzip"] };
    expect(validateExport({ ...base, format: "disks" }, caps).errors.format).toMatch(/ovf, ova/);
    expect(validateExport({ ...base, format: "ova", compression: "zstd" }, caps).errors.compression).toMatch(/gzip/);
  });

  it("maps the OVF-files choice to cleanup_ovf, for OVAs only", () => {
    expect(validateExport({ ...base, format: "ova", ovfFiles: "keep" }).request?.cleanup_ovf).toBe(false);
    expect(validateExport({ ...base, format: "ova", ovfFiles: "cleanup" }).request?.cleanup_ovf).toBe(true);
    expect(validateExport({ ...base, format: "ovf", ovfFiles: "keep" }).errors.cleanup_ovf).toBeDefined();
  });

  it("takes snapshot or power-off, with a timeout only for power-off", () => {
    expect(validateExport({ ...base, consistency: "snapshot" }, vsphere).request).toMatchObject({ snapshot: true });
    expect(validateExport({ ...base, consistency: "power-off", powerOffTimeout: "5m" }, vsphere).request).toMatchObject({ power_off: true, power_off_timeout: "5m" });
    expect(validateExport({ ...base, consistency: "power-off", powerOffTimeout: "soon" }, vsphere).errors.power_off_timeout).toBeDefined();
    expect(validateExport({ ...base, consistency: "snapshot", powerOffTimeout: "5m" }, vsphere).errors.power_off_timeout).toMatch(/Only with power-off/);
    expect(validateExport({ ...base, consistency: "snapshot" }, { ...vsphere, supportsSnapshot: false }).errors.snapshot).toBeDefined();
  });

  it("checks the limits' ranges and reads sizes like hyperctl", () => {
    const bad = validateExport({ ...base, parallel: "0", maxAttempts: "101", bandwidthLimit: "fast" });
    expect(Object.keys(bad.errors).sort()).toEqual(["bandwidth_limit", "max_attempts", "parallel_downloads"]);
    expect(validateExport({ ...base, parallel: "4", maxAttempts: "3", bandwidthLimit: "50MiB" }).request).toMatchObject({
      parallel_downloads: 4,
      max_attempts: 3,
      bandwidth_limit: 50 * 2 ** 20,
    });
  });

  it("accepts only the provider's methods", () => {
    const aws = { ...vsphere, methods: ["ebs-direct", "export-task"] };
    expect(validateExport({ ...base, method: "teleport" }, aws).errors.method).toMatch(/ebs-direct, export-task/);
    expect(validateExport({ ...base, method: "export-task" }, aws).request?.method).toBe("export-task");
  });
});

describe("hyperctlCommand", () => {
  it("writes hyperctl's flag names with shell quoting", () => {
    expect(hyperctlCommand(base)).toBe("hyperctl export --provider demo --vm /DC0/vm/production/db/db-01 --wait");
    expect(
      hyperctlCommand({
        ...base,
        vm: "web 01's",
        output: "exports/web",
        format: "ova",
        compression: "zstd",
        compressionLevel: "5",
        ovfFiles: "keep",
        consistency: "power-off",
        powerOffTimeout: "5m",
        parallel: "2",
        bandwidthLimit: "50MiB",
        maxAttempts: "3",
        method: "export-task",
      }),
    ).toBe(
      "hyperctl export --provider demo --vm 'web 01'\\''s' --output exports/web --format ova --method export-task --compress --compression zstd --compression-level 5 --keep-ovf --power-off --power-off-timeout 5m --parallel 2 --bandwidth-limit 50MiB --max-attempts 3 --wait",
    );
    expect(hyperctlCommand({ ...base, format: "disks", diskFormat: "vhd", vhdType: "fixed", consistency: "snapshot" })).toBe(
      "hyperctl export --provider demo --vm /DC0/vm/production/db/db-01 --format disks --disk-format vhd --vhd-type fixed --snapshot --wait",
    );
    expect(hyperctlCommand({ ...base, format: "ova", compression: "none", ovfFiles: "cleanup" })).toContain("--compress=false --cleanup-ovf");
  });

  it("quotes what a shell would split or expand", () => {
    expect(shellQuote("")).toBe("''");
    expect(shellQuote("a b")).toBe("'a b'");
    expect(shellQuote("$(rm -rf /)")).toBe("'$(rm -rf /)'");
    expect(shellQuote("web-*")).toBe("'web-*'");
    expect(shellQuote("/DC0/vm/web-01")).toBe("/DC0/vm/web-01");
  });
});

describe("parsing helpers", () => {
  it("parseSize reads hyperctl's units", () => {
    expect(parseSize("1048576")).toBe(1048576);
    expect(parseSize("50MiB")).toBe(50 * 2 ** 20);
    expect(parseSize("100MB")).toBe(100e6);
    expect(parseSize("1.5 GiB/s")).toBe(1.5 * 2 ** 30);
    expect(parseSize("10 parsecs")).toBeNull();
    expect(parseSize("-1")).toBeNull();
  });
  it("isPositiveDuration reads Go durations", () => {
    for (const ok of ["5m", "90s", "1h30m", "1.5h"]) expect(isPositiveDuration(ok)).toBe(true);
    for (const bad of ["", "0s", "5", "five minutes", "-5m"]) expect(isPositiveDuration(bad)).toBe(false);
  });
});
