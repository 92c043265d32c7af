package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/hypersdk/hypersdk/ova"
	"github.com/hypersdk/hypersdk/ovf"
	"github.com/hypersdk/hypersdk/progress"
)

// The `ova` commands work on local files with package ova: no daemon, no
// server and no token. They never call a.client(), which is where the
// server and token are resolved, so they run anywhere.

func (a *app) ovaCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ova",
		Short: "Pack, verify, inspect and extract OVA archives (local files, no daemon)",
		Long: `Work with OVA archives on this machine. These commands need no daemon,
server or token.

  pack DIR          turn an OVF folder into an OVA (descriptor first, files in
                    References order, SHA-256 manifest), optionally gzip or zstd
  verify FILE       check the structure and every manifest digest
  inspect FILE      show the VM (CPUs, memory, disks, NICs) and the files
  extract FILE DIR  unpack safely: nothing is written unless the whole archive
                    is valid and its manifest matches

Plain, gzip and zstd archives are recognized by their first bytes, not by
their names. Archives with unsafe names (.., absolute paths), links, devices,
duplicate or unreferenced files, sizes other than declared or decompression
bombs are refused, and every problem is listed.`,
		RunE: groupRunE,
	}
	cmd.AddCommand(a.ovaPackCommand(), a.ovaVerifyCommand(), a.ovaInspectCommand(), a.ovaExtractCommand())
	return cmd
}

// Output objects. JSON and YAML use these (snake_case, like the API).

type ovaFileOut struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	Size int64  `json:"size"`
	// Digests were computed from the bytes while they streamed.
	Digests map[string]string `json:"digests,omitempty"`
	// ManifestDigests are what the archive's manifest lists for the file.
	ManifestDigests map[string]string `json:"manifest_digests,omitempty"`
}

type ovaPackOut struct {
	Path          string        `json:"path"`
	Size          int64         `json:"size"`
	SHA256        string        `json:"sha256"`
	TarSize       int64         `json:"tar_size"`
	Compression   string        `json:"compression"`
	Level         int           `json:"level,omitempty"`
	Ratio         float64       `json:"ratio"`
	Duration      time.Duration `json:"duration_ns"`
	Throughput    float64       `json:"throughput_bytes_per_second"`
	Manifest      string        `json:"manifest,omitempty"`
	ManifestAtEnd bool          `json:"manifest_at_end"`
	CleanedUp     bool          `json:"cleaned_up"`
	Files         []ovaFileOut  `json:"files"`
}

type ovaProblemOut struct {
	Member string `json:"member,omitempty"`
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

type ovaDiskOut struct {
	DiskID         string `json:"disk_id,omitempty"`
	File           string `json:"file,omitempty"`
	CapacityBytes  int64  `json:"capacity_bytes"`
	PopulatedBytes int64  `json:"populated_bytes,omitempty"`
	FileSize       int64  `json:"file_size"`
	Format         string `json:"format,omitempty"`
	FormatURI      string `json:"format_uri,omitempty"`
	Controller     string `json:"controller,omitempty"`
}

type ovaNICOut struct {
	Name    string `json:"name,omitempty"`
	Network string `json:"network,omitempty"`
	Type    string `json:"type,omitempty"`
	MAC     string `json:"mac,omitempty"`
}

type ovaSystemOut struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	OS          string       `json:"os,omitempty"`
	SystemType  string       `json:"system_type,omitempty"`
	Firmware    string       `json:"firmware,omitempty"`
	CPUs        int          `json:"cpus"`
	MemoryBytes int64        `json:"memory_bytes"`
	Disks       []ovaDiskOut `json:"disks"`
	NICs        []ovaNICOut  `json:"nics,omitempty"`
}

type ovaReportOut struct {
	Archive     string `json:"archive"`
	Compression string `json:"compression"`
	// Valid is false when the archive has structural problems or a
	// digest does not match.
	Valid bool `json:"valid"`
	// Verified is true when the manifest was checked against the bytes
	// and every digest matched (never for inspect, which does not hash).
	Verified           bool            `json:"verified"`
	Descriptor         string          `json:"descriptor,omitempty"`
	OVFVersion         int             `json:"ovf_version,omitempty"`
	Manifest           string          `json:"manifest,omitempty"`
	ManifestAlgorithms []string        `json:"manifest_algorithms,omitempty"`
	ManifestAtEnd      bool            `json:"manifest_at_end,omitempty"`
	Certificate        bool            `json:"certificate"`
	Systems            []ovaSystemOut  `json:"systems,omitempty"`
	Files              []ovaFileOut    `json:"files"`
	Problems           []ovaProblemOut `json:"problems,omitempty"`
	Warnings           []ovaProblemOut `json:"warnings,omitempty"`
	// Dir is where extract put the files.
	Dir string `json:"dir,omitempty"`
}

func digestMap(d map[ovf.Algorithm]string) map[string]string {
	if len(d) == 0 {
		return nil
	}
	out := make(map[string]string, len(d))
	for alg, v := range d {
		out[string(alg)] = v
	}
	return out
}

func manifestDigests(m *ovf.Manifest, name string) map[string]string {
	if m == nil {
		return nil
	}
	var out map[string]string
	for _, e := range m.Lookup(name) {
		if out == nil {
			out = map[string]string{}
		}
		out[string(e.Algorithm)] = e.Digest
	}
	return out
}

func problemsOut(ps []ova.Problem) []ovaProblemOut {
	var out []ovaProblemOut
	for _, p := range ps {
		out = append(out, ovaProblemOut{Member: p.Member, Kind: string(p.Kind), Detail: p.Detail})
	}
	return out
}

// reportOut turns what package ova found into the output object; err is
// the error Validate, Inspect or Extract returned with rep.
func reportOut(archive string, rep *ova.Report, err error) *ovaReportOut {
	out := &ovaReportOut{Archive: archive, Files: []ovaFileOut{}}
	var oe *ova.Error
	if errors.As(err, &oe) {
		out.Problems = problemsOut(oe.Problems)
	}
	if rep == nil {
		return out
	}
	out.Valid = err == nil
	out.Verified = err == nil && rep.Verified
	out.Compression = string(rep.Compression)
	out.Descriptor = rep.DescriptorName
	out.Certificate = rep.Certificate
	out.Dir = rep.Dir
	out.Warnings = problemsOut(rep.Warnings)
	if rep.Manifest != nil {
		out.Manifest = ovf.ManifestName(rep.DescriptorName)
		out.ManifestAtEnd = rep.ManifestAtEnd
		for _, e := range rep.Manifest.Entries {
			if !slices.Contains(out.ManifestAlgorithms, string(e.Algorithm)) {
				out.ManifestAlgorithms = append(out.ManifestAlgorithms, string(e.Algorithm))
			}
		}
	}
	for _, m := range rep.Members {
		f := ovaFileOut{Name: m.Name, Kind: string(m.Kind), Size: m.Size, Digests: digestMap(m.Digests)}
		if m.Kind == ova.KindDescriptor || m.Kind == ova.KindFile {
			f.ManifestDigests = manifestDigests(rep.Manifest, m.Name)
		}
		out.Files = append(out.Files, f)
	}
	if rep.Descriptor == nil {
		return out
	}
	s := rep.Descriptor.Summary()
	out.OVFVersion = s.OVFVersion
	for _, vs := range s.Systems {
		so := ovaSystemOut{
			ID: vs.ID, Name: vs.Name, SystemType: vs.SystemType, Firmware: vs.Firmware,
			CPUs: vs.CPUs, MemoryBytes: vs.MemoryBytes, Disks: []ovaDiskOut{},
		}
		switch {
		case vs.OS.OSType != "" && vs.OS.Description != "":
			so.OS = vs.OS.OSType + " (" + vs.OS.Description + ")"
		case vs.OS.OSType != "":
			so.OS = vs.OS.OSType
		default:
			so.OS = vs.OS.Description
		}
		for _, d := range vs.Disks {
			so.Disks = append(so.Disks, ovaDiskOut{
				DiskID: d.DiskID, File: d.Href, CapacityBytes: d.CapacityBytes, PopulatedBytes: max(d.PopulatedBytes, 0),
				FileSize: d.FileSize, Format: d.FormatName, FormatURI: d.Format, Controller: d.Controller,
			})
		}
		for _, n := range vs.NICs {
			so.NICs = append(so.NICs, ovaNICOut(n))
		}
		out.Systems = append(out.Systems, so)
	}
	return out
}

// ova pack

type ovaPackFlags struct {
	output, compress, descriptor string
	level                        int
	cleanup, force               bool
}

func (a *app) ovaPackCommand() *cobra.Command {
	f := &ovaPackFlags{}
	cmd := &cobra.Command{
		Use:   "pack DIR [--output FILE] [--compress gzip|zstd] [--level N] [--cleanup-ovf]",
		Short: "Pack an OVF folder into an OVA",
		Long: `Pack the OVF folder DIR (a .ovf descriptor and the files it references)
into one OVA archive, as DMTF DSP0243 orders it: the descriptor first, then
the folder's manifest and certificate if it has them, then the files in the
order of the descriptor's References section, then a generated SHA-256
manifest if the folder had none. Every file is checked against the
descriptor's sizes (and the folder's manifest, if any) and read once.

The archive is written to a temporary name next to FILE, synced and renamed
into place, so an interrupted pack never leaves a truncated FILE. Without
--output it is <descriptor name>.ova (.ova.gz, .ova.zst) in the current
directory; --output may also name a directory. Without --compress the
compression follows FILE's name (.gz, .zst).

--level is on gzip's scale (1-9, default 6) or zstd's (1-22, default 3).
Compression pays off on raw, VHD and qcow2 disks; vSphere's streamOptimized
VMDKs are already deflate-compressed and shrink by a few percent at most.

--cleanup-ovf removes each file from DIR as soon as it is in the archive
(peak disk use stays near one copy of the VM), and the descriptor and
manifest once the archive is committed; if packing fails midway, the removed
files are gone.`,
		Example: `  hyperctl ova pack ./web01
  hyperctl ova pack ./web01 --output /backups/web01.ova.gz --level 9
  hyperctl ova pack ./web01 --compress zstd --cleanup-ovf -o json`,
		Args: exactArgs("DIR"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return a.ovaPack(cmd, args[0], f)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.output, "output", "", "archive to write, or a directory for it (default ./<descriptor>.ova[.gz|.zst])")
	fl.StringVar(&f.compress, "compress", "", "compress the archive: gzip or zstd (default: from --output's name, else none)")
	fl.IntVar(&f.level, "level", 0, "compression level: gzip 1-9 (default 6), zstd 1-22 (default 3)")
	fl.BoolVar(&f.cleanup, "cleanup-ovf", false, "remove the folder's files as they go into the archive")
	fl.StringVar(&f.descriptor, "descriptor", "", "the .ovf file in DIR (default: the only one)")
	fl.BoolVar(&f.force, "force", false, "replace the archive if it exists")
	_ = cmd.RegisterFlagCompletionFunc("compress", cobra.FixedCompletions([]string{"gzip", "zstd", "none"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.MarkFlagFilename("descriptor", "ovf")
	return cmd
}

// compressionOfName guesses the compression from an archive's name.
func compressionOfName(name string) (ova.Compression, bool) {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".gz":
		return ova.CompressionGzip, true
	case ".zst":
		return ova.CompressionZstd, true
	case ".ova":
		return ova.CompressionNone, true
	}
	return ova.CompressionNone, false
}

func (a *app) ovaPack(cmd *cobra.Command, dir string, f *ovaPackFlags) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return usageErrorf("%s is not a directory (an OVF folder holds the .ovf and its files)", dir)
	}
	descName := f.descriptor
	if descName == "" {
		var found []string
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.Type().IsRegular() && strings.EqualFold(filepath.Ext(e.Name()), ".ovf") {
				found = append(found, e.Name())
			}
		}
		switch len(found) {
		case 1:
			descName = found[0]
		case 0:
			return fmt.Errorf("no .ovf descriptor in %s", dir)
		default:
			return usageErrorf("several descriptors in %s (%s): pick one with --descriptor", dir, strings.Join(found, ", "))
		}
	} else if descName != filepath.Base(descName) {
		return usageErrorf("--descriptor names a file in DIR, not a path: %q", descName)
	}

	var comp ova.Compression
	if cmd.Flags().Changed("compress") {
		if comp, err = ova.ParseCompression(f.compress); err != nil {
			return usageErrorf("--compress: want gzip, zstd or none, not %q", f.compress)
		}
	}
	out := f.output
	outIsDir := out != "" && isDir(out)
	if out != "" && !outIsDir {
		if !cmd.Flags().Changed("compress") {
			comp, _ = compressionOfName(out)
		} else if guess, known := compressionOfName(out); known && guess != comp {
			fmt.Fprintf(a.env.stderr, "hyperctl: warning: %s is named like a %s archive but is written with compression %s\n", out, guess, comp)
		}
	}
	if comp == "" {
		comp = ova.CompressionNone
	}
	if cmd.Flags().Changed("level") && comp == ova.CompressionNone {
		return usageErrorf("--level needs a compression (--compress gzip|zstd, or an --output ending in .gz or .zst)")
	}
	if out == "" || outIsDir {
		base := strings.TrimSuffix(descName, filepath.Ext(descName))
		if base == "" {
			base = filepath.Base(filepath.Clean(dir))
		}
		out = filepath.Join(out, base+comp.Extension())
	}
	if !f.force {
		if _, err := os.Lstat(out); err == nil {
			return fmt.Errorf("%s exists; pass --force to replace it", out)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}

	opts := ova.Options{Compression: comp, Level: f.level, CleanupOVF: f.cleanup}
	bar := a.newPackBar(dir, descName)
	if bar != nil {
		opts.Progress = bar.update
	}
	res, err := ova.Pack(cmd.Context(), dir, descName, out, opts)
	if bar != nil {
		bar.done(err == nil)
	}
	if err != nil {
		return err
	}
	po := ovaPackOut{
		Path: res.Path, Size: res.Size, SHA256: res.SHA256, TarSize: res.TarSize, Compression: string(res.Compression),
		Level: res.Level, Ratio: res.Ratio, Duration: res.Duration, Throughput: res.Throughput,
		ManifestAtEnd: res.ManifestAtEnd, CleanedUp: f.cleanup, Files: []ovaFileOut{},
	}
	for _, m := range res.Members {
		if m.Kind == ova.KindManifest {
			po.Manifest = m.Name
		}
		po.Files = append(po.Files, ovaFileOut{Name: m.Name, Kind: string(m.Kind), Size: m.Size, Digests: digestMap(m.Digests)})
	}
	return a.show(po, func(w io.Writer) error {
		comp := "uncompressed"
		if po.Compression != string(ova.CompressionNone) {
			comp = fmt.Sprintf("%s level %d, %s of tar, ratio %.2fx", po.Compression, po.Level, humanBytes(po.TarSize), po.Ratio)
		}
		fmt.Fprintf(w, "packed %s: %s (%s) in %s, %s\n", po.Path, humanBytes(po.Size), comp,
			humanDuration(po.Duration), humanRate(po.Throughput))
		fmt.Fprintf(w, "SHA-256 %s\n", po.SHA256)
		fmt.Fprintln(w, "MEMBER\tKIND\tSIZE\tSHA-256")
		for _, m := range po.Files {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", m.Name, m.Kind, humanBytes(m.Size), m.Digests[string(ovf.SHA256)])
		}
		return nil
	})
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// newPackBar draws `ova pack`'s progress on a terminal: the bytes of the
// files the descriptor references.
func (a *app) newPackBar(dir, descName string) *byteBar {
	if !a.env.isTerminal(a.env.stderr) || descName == "" {
		return nil
	}
	d, err := ovf.ReadFile(filepath.Join(dir, descName))
	if err != nil {
		return nil // Pack reports it
	}
	files, err := d.PackageFiles()
	if err != nil {
		return nil
	}
	var total int64
	for _, pf := range files {
		total += max(pf.Size, 0)
	}
	return a.newByteBar("packing", total)
}

// byteBar is one progress bar over a known number of bytes (bytes, percent,
// rate, ETA), for the local commands; nil, and silent, without a terminal.
type byteBar struct {
	p   *mpb.Progress
	bar *mpb.Bar
	mu  sync.Mutex
}

func (a *app) newByteBar(label string, total int64) *byteBar {
	if !a.env.isTerminal(a.env.stderr) {
		return nil
	}
	p := mpb.New(mpb.WithOutput(a.env.stderr), mpb.WithRefreshRate(200*time.Millisecond))
	bar := p.New(total, mpb.BarStyle(),
		mpb.PrependDecorators(decor.Name(label, decor.WCSyncSpaceR), decor.Counters(decor.SizeB1024(0), "% .1f / % .1f", decor.WCSyncSpace)),
		mpb.AppendDecorators(decor.Percentage(decor.WC{W: 5}), decor.EwmaSpeed(decor.SizeB1024(0), "% .1f", 30, decor.WCSyncSpace),
			decor.EwmaETA(decor.ET_STYLE_GO, 30, decor.WCSyncSpace)))
	return &byteBar{p: p, bar: bar}
}

func (b *byteBar) update(pr progress.Report) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if pr.BytesDone > b.bar.Current() {
		b.bar.EwmaSetCurrent(pr.BytesDone, 200*time.Millisecond)
	}
}

func (b *byteBar) done(ok bool) {
	if b == nil {
		return
	}
	b.mu.Lock()
	if ok {
		b.bar.SetTotal(b.bar.Current(), true)
	} else {
		b.bar.Abort(false)
	}
	b.mu.Unlock()
	b.p.Wait()
}

// readFlags are the limits of the commands that read an archive.
type readFlags struct {
	maxUndeclared string
}

func addReadFlags(cmd *cobra.Command, f *readFlags) {
	cmd.Flags().StringVar(&f.maxUndeclared, "max-undeclared-size", "",
		"cap for a file whose size the descriptor does not declare, e.g. 20GiB (default: the capacity of the disk it backs plus format overhead, else 256GiB)")
}

func (f *readFlags) options() (ova.ReadOptions, error) {
	var o ova.ReadOptions
	if f.maxUndeclared != "" {
		n, err := parseBytes(f.maxUndeclared)
		if err != nil || n <= 0 {
			return o, usageErrorf("--max-undeclared-size: want a size such as 20GiB, not %q", f.maxUndeclared)
		}
		o.MaxUndeclaredFileBytes = n
	}
	return o, nil
}

// ova verify

func (a *app) ovaVerifyCommand() *cobra.Command {
	var allowNoManifest bool
	var rf readFlags
	cmd := &cobra.Command{
		Use:   "verify FILE",
		Short: "Check an OVA's structure and every manifest digest",
		Long: `Read the whole archive (plain, gzip or zstd) without writing anything: check
that the descriptor comes first, that every member is a regular file the
descriptor references, with the size it declares, and that each digest in
the manifest (SHA-1, SHA-256 or SHA-512 lines) matches the bytes. Every
problem is listed, naming the file; the exit code is 1 if there is any.

An archive without a manifest cannot be verified and fails unless
--allow-no-manifest is given (then only its structure is checked).`,
		Example: `  hyperctl ova verify web01.ova
  hyperctl ova verify web01.ova.zst -o json`,
		Args: exactArgs("FILE"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			archive := args[0]
			opts, err := rf.options()
			if err != nil {
				return err
			}
			opts.RequireManifest = !allowNoManifest
			rep, err := ova.Validate(cmd.Context(), archive, opts)
			return a.showReport(archive, rep, err, "verify")
		}),
	}
	cmd.Flags().BoolVar(&allowNoManifest, "allow-no-manifest", false, "accept an archive without a manifest (structure checked, contents not verified)")
	addReadFlags(cmd, &rf)
	return cmd
}

// ova inspect

func (a *app) ovaInspectCommand() *cobra.Command {
	var rf readFlags
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Show the VM and the files in an OVA",
		Long: `Show what an OVA holds without extracting it: the virtual machine (name,
guest OS, CPUs, memory, firmware), its disks with capacities, formats and
controllers, its network adapters, and every file with its size and the
digests the manifest lists. A plain .ova is read by seeking over the disk
data; a compressed one is decompressed, but nothing is hashed: use 'ova
verify' to check the digests.`,
		Example: `  hyperctl ova inspect web01.ova
  hyperctl ova inspect web01.ova.gz -o yaml`,
		Args: exactArgs("FILE"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			archive := args[0]
			opts, err := rf.options()
			if err != nil {
				return err
			}
			rep, err := ova.Inspect(cmd.Context(), archive, opts)
			return a.showReport(archive, rep, err, "inspect")
		}),
	}
	addReadFlags(cmd, &rf)
	return cmd
}

// ova extract

func (a *app) ovaExtractCommand() *cobra.Command {
	var overwrite, requireManifest bool
	var rf readFlags
	cmd := &cobra.Command{
		Use:   "extract FILE DIR",
		Short: "Unpack an OVA safely into a directory",
		Long: `Unpack an OVA (plain, gzip or zstd, recognized by its bytes) into DIR,
creating it if needed. Files are written to a private staging directory
inside DIR and moved into place only when the whole archive has been read
and found valid, manifest digests included; a hostile or corrupt archive
is refused with every problem listed and leaves nothing behind. Nothing is
ever written outside DIR, whatever the names in the archive.

Existing files in DIR are not replaced unless --overwrite is given. An
archive without a manifest is extracted with a warning (its contents cannot
be verified) unless --require-manifest is given.`,
		Example: `  hyperctl ova extract web01.ova ./web01
  hyperctl ova extract web01.ova.zst /srv/import/web01 --require-manifest`,
		Args: exactArgs("FILE", "DIR"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			archive, dest := args[0], args[1]
			opts, err := rf.options()
			if err != nil {
				return err
			}
			opts.RequireManifest = requireManifest
			rep, err := ova.Extract(cmd.Context(), archive, dest, ova.ExtractOptions{ReadOptions: opts, Overwrite: overwrite})
			return a.showReport(archive, rep, err, "extract")
		}),
	}
	addReadFlags(cmd, &rf)
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "replace files that already exist in DIR")
	cmd.Flags().BoolVar(&requireManifest, "require-manifest", false, "refuse an archive without a manifest")
	return cmd
}

// showReport prints what verify, inspect or extract found. An archive
// with problems is an error (exit 1): JSON and YAML still print the report,
// problems included, and the problems are listed on stderr.
func (a *app) showReport(archive string, rep *ova.Report, err error, verb string) error {
	var oe *ova.Error
	if err != nil && !errors.As(err, &oe) {
		return err // I/O, cancellation: nothing to show
	}
	out := reportOut(archive, rep, err)
	if err != nil && a.format == "table" && verb != "inspect" {
		return err // the error lists every problem
	}
	if perr := a.show(out, func(w io.Writer) error { return a.reportTable(w, out, verb) }); perr != nil {
		return perr
	}
	return err
}

func (a *app) reportTable(w io.Writer, r *ovaReportOut, verb string) error {
	comp := "plain"
	if r.Compression != "" && r.Compression != string(ova.CompressionNone) {
		comp = r.Compression + "-compressed"
	}
	manifest := "none"
	if r.Manifest != "" {
		manifest = fmt.Sprintf("%s (%s", r.Manifest, strings.Join(r.ManifestAlgorithms, ", "))
		if r.ManifestAtEnd {
			manifest += ", after the files"
		}
		manifest += ")"
	}
	switch verb {
	case "verify":
		if r.Verified {
			fmt.Fprintf(w, "OK: %s: %s OVA, every digest in %s matches\n", r.Archive, comp, r.Manifest)
		} else {
			fmt.Fprintf(w, "OK: %s: %s OVA, structure valid; no manifest, so the contents were NOT verified\n", r.Archive, comp)
		}
	case "extract":
		if r.Verified {
			fmt.Fprintf(w, "extracted %s (%s) into %s; every digest in %s matches\n", r.Archive, comp, r.Dir, r.Manifest)
		} else {
			fmt.Fprintf(w, "extracted %s (%s) into %s\nwarning: the archive has no manifest: its contents could not be verified\n", r.Archive, comp, r.Dir)
		}
	case "inspect":
		fmt.Fprintf(w, "Archive:\t%s (%s)\n", r.Archive, comp)
		if r.Descriptor != "" {
			fmt.Fprintf(w, "Descriptor:\t%s (OVF %d.x)\n", r.Descriptor, max(r.OVFVersion, 1))
		}
		fmt.Fprintf(w, "Manifest:\t%s\n", manifest)
		if r.Certificate {
			fmt.Fprintf(w, "Certificate:\tpresent (signature not checked)\n")
		}
		for _, s := range r.Systems {
			mem := "-"
			if s.MemoryBytes >= 0 {
				mem = humanBytes(s.MemoryBytes)
			}
			fmt.Fprintf(w, "\nVM:\t%s\n", s.Name)
			fmt.Fprintf(w, "  Guest OS:\t%s\n", orDash(s.OS))
			fmt.Fprintf(w, "  CPUs:\t%d\n", s.CPUs)
			fmt.Fprintf(w, "  Memory:\t%s\n", mem)
			if s.Firmware != "" {
				fmt.Fprintf(w, "  Firmware:\t%s\n", s.Firmware)
			}
			if s.SystemType != "" {
				fmt.Fprintf(w, "  Hardware:\t%s\n", s.SystemType)
			}
			fmt.Fprintln(w)
			fmt.Fprintln(w, "DISK\tCAPACITY\tFORMAT\tCONTROLLER\tFILE\tFILE SIZE")
			for _, d := range s.Disks {
				capacity, size := "-", "-"
				if d.CapacityBytes >= 0 {
					capacity = humanBytes(d.CapacityBytes)
				}
				if d.FileSize >= 0 {
					size = humanBytes(d.FileSize)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", orDash(d.DiskID), capacity, orDash(d.Format), orDash(d.Controller), orDash(d.File), size)
			}
			if len(s.NICs) > 0 {
				fmt.Fprintln(w)
				fmt.Fprintln(w, "NIC\tTYPE\tNETWORK\tMAC")
				for _, n := range s.NICs {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", orDash(n.Name), orDash(n.Type), orDash(n.Network), orDash(n.MAC))
				}
			}
		}
		fmt.Fprintln(w)
	}
	if verb == "inspect" {
		fmt.Fprintln(w, "FILE\tKIND\tSIZE\tDIGEST (MANIFEST)")
	} else {
		fmt.Fprintln(w, "FILE\tKIND\tSIZE\tSHA-256")
	}
	for _, f := range r.Files {
		digest := f.Digests[string(ovf.SHA256)]
		if verb == "inspect" {
			digest = "-"
			for _, alg := range []ovf.Algorithm{ovf.SHA256, ovf.SHA512, ovf.SHA1} {
				if d, ok := f.ManifestDigests[string(alg)]; ok {
					digest = string(alg) + ":" + d
					break
				}
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", f.Name, f.Kind, humanBytes(f.Size), digest)
	}
	for _, p := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", ova.Problem{Member: p.Member, Kind: ova.ProblemKind(p.Kind), Detail: p.Detail})
	}
	return nil
}
