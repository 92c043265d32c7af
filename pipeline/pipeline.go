package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/hypersdk/hypersdk/internal/fielderr"
	"github.com/hypersdk/hypersdk/internal/safepath"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/transfer"
)

// CheckOptions applies the packaging defaults to opts (format ovf, disk
// format vmdk) and refuses what OptionProblems finds, wrapping
// providers.ErrInvalidArgument; Export calls it before asking the platform
// for anything.
func CheckOptions(opts *providers.ExportOptions) error {
	if opts.Format == "" {
		opts.Format = providers.FormatOVF
	}
	if opts.DiskFormat == "" {
		opts.DiskFormat = providers.DiskVMDK
	}
	return OptionProblems(*opts).Err(providers.ErrInvalidArgument)
}

// OptionProblems lists what is wrong with the packaging choices of opts
// (format, disk_format, compress, compression, compression_level), each at
// its request field. It is the one check of those choices: the job engine
// and hyperctl report its list field by field, Export refuses with it.
// Empty format and disk format mean the defaults.
func OptionProblems(opts providers.ExportOptions) fielderr.List {
	var problems fielderr.List
	format, diskFormat := cmp.Or(opts.Format, providers.FormatOVF), cmp.Or(opts.DiskFormat, providers.DiskVMDK)
	switch format {
	case providers.FormatOVF, providers.FormatOVA, providers.FormatDisks:
	default:
		problems.Addf("format", "must be ovf, ova or disks, got %q", format)
	}
	switch {
	case !slices.Contains(providers.DiskFormats(), string(diskFormat)):
		problems.Addf("disk_format", "must be one of %s, got %q", strings.Join(providers.DiskFormats(), ", "), diskFormat)
	case diskFormat != providers.DiskVMDK && format != providers.FormatDisks:
		// No field name in the text: a client names its own (hyperctl: --format).
		problems.Addf("disk_format", "%s disks are exported only as plain disks (format disks; the format is %s): OVF packages carry streamOptimized VMDK disks", diskFormat, format)
	}
	switch {
	case opts.VHDType == "":
	case opts.VHDType != providers.VHDDynamic && opts.VHDType != providers.VHDFixed:
		problems.Addf("vhd_type", "must be dynamic or fixed, got %q", opts.VHDType)
	case diskFormat != providers.DiskVHD:
		problems.Addf("vhd_type", "is for vhd disks (the disk format is %s)", diskFormat)
	}
	if opts.Compression != "" && opts.Compression != "gzip" && opts.Compression != "zstd" {
		problems.Addf("compression", "must be gzip or zstd, got %q", opts.Compression)
	}
	if opts.Compress && format != providers.FormatOVA {
		problems.Addf("compress", "only OVA exports are compressed (the format is %s)", format)
	}
	if opts.CompressionLevel < 0 || opts.CompressionLevel > 9 {
		problems.Addf("compression_level", "must be between 0 and 9, got %d", opts.CompressionLevel)
	}
	return problems
}

// Export exports the VM identifier names from p into opts.OutputDir (or
// opts.OutputRoot) in opts.Format with opts.DiskFormat disks.
func Export(ctx context.Context, p providers.Exporter, identifier string, opts providers.ExportOptions) (res *providers.ExportResult, err error) {
	start := time.Now()
	if err := CheckOptions(&opts); err != nil {
		return nil, providers.Permanent(err)
	}
	// A provider without several methods never looks at the field: the
	// one check is here, before the platform is asked for anything.
	if err := providers.CheckMethod(p, opts.Method); err != nil {
		return nil, providers.Permanent(err)
	}
	if opts.OutputDir == "" && opts.OutputRoot == nil {
		return nil, providers.Permanent(fmt.Errorf("%w: no output directory", providers.ErrInvalidArgument))
	}
	root := opts.OutputRoot
	if root == nil {
		if root, err = safepath.OpenPath(opts.OutputDir, ".", 0o750); err != nil {
			return nil, providers.Permanent(fmt.Errorf("output directory: %w", err))
		}
		defer root.Close()
	}
	exp, err := p.PrepareExport(ctx, identifier, opts)
	if err != nil {
		return nil, err
	}
	if exp.Cleanup != nil {
		defer exp.Cleanup()
	}
	r := &run{exp: exp, opts: opts, root: root, log: opts.Log(), base: fileBase(exp.VM.Name)}
	if opts.Output != nil {
		// Files stream into the sink, an OVA's members into its archive
		// object (see archive).
		r.sink = opts.Output
	}
	r.log = r.log.With("vm", exp.VM.Name)
	defer func() {
		if err != nil {
			r.removeWritten(ctx, r.final(ctx, err))
		} else {
			r.releaseObjects()
		}
	}()
	res, err = r.run(ctx)
	if exp.Finish != nil {
		if err != nil {
			// The platform hears of a failure even when ctx is cancelled.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			_ = exp.Finish(fctx, err)
			cancel()
		} else {
			err = exp.Finish(ctx, nil)
		}
	}
	if err != nil {
		return nil, err
	}
	res.Duration = time.Since(start)
	if s := res.Duration.Seconds(); s > 0 {
		res.Throughput = float64(res.Bytes) / s
	}
	r.log.Info("export complete", "format", string(res.Format), "disk_format", string(res.DiskFormat), "files", len(res.Files),
		"bytes", res.Bytes, "duration", res.Duration.Round(time.Millisecond).String(), "throughput_mib_s", fmt.Sprintf("%.1f", res.Throughput/(1<<20)))
	return res, nil
}

// run is the state of one Export call.
type run struct {
	exp  *providers.Export
	opts providers.ExportOptions
	root *os.Root
	log  *slog.Logger
	base string // file name prefix derived from the VM name

	// sink, when set, receives the export's files (object storage);
	// root then holds only resume state and staged sources.
	sink providers.Sink
	// arch, when set, is the OVA the files stream into as its members
	// (an uncompressed OVA to object storage).
	arch *archive

	mu      sync.Mutex
	written []string // names in root, removed if the export fails
	// objects are the objects started in the sink: kept, with their
	// uploads' state, when the export fails in a way that may heal (the
	// next attempt sends only the parts they miss), removed when no
	// attempt will follow.
	objects []string
	// partials are the part files and journals of block downloads: kept
	// when the export fails in a way that may heal, so that the next
	// attempt into the same directory resumes them; removed when no
	// attempt will follow (see final).
	partials []string

	// resumed counts the source bytes an earlier attempt had already
	// fetched, reported in the result (and by the daemon as a metric).
	resumed atomic.Int64
	// httpLimit paces the HTTP sources streamed into object storage
	// (BandwidthLimit); nil: unlimited.
	httpLimit *rate.Limiter
}

func (r *run) notePartial(names ...string) {
	r.mu.Lock()
	r.partials = append(r.partials, names...)
	r.mu.Unlock()
}

func (r *run) dropPartial(names ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.partials = slices.DeleteFunc(r.partials, func(n string) bool { return slices.Contains(names, n) })
}

func (r *run) noteObject(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.Contains(r.objects, name) {
		r.objects = append(r.objects, name)
	}
}

// releaseObjects forgets the uploads' state of a successful export.
func (r *run) releaseObjects() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.objects {
		if err := r.opts.Output.Release(n); err != nil {
			r.log.Warn("upload state not removed", "file", n, "error", err)
		}
	}
	r.objects = nil
}

func (r *run) track(name string) {
	r.mu.Lock()
	r.written = append(r.written, name)
	r.mu.Unlock()
}

func (r *run) untrack(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, n := range r.written {
		if n == name {
			r.written = append(r.written[:i], r.written[i+1:]...)
			return
		}
	}
}

// final reports whether no attempt will follow a failed export, so that
// its resume state is worth nothing: the failure is permanent, the job
// engine abandoned the export (a user's cancel), or this was the last
// attempt and it failed on its own (not cancelled: a daemon shutting down
// or losing its lease hands the job on to resume).
func (r *run) final(ctx context.Context, failure error) bool {
	switch {
	case providers.IsPermanent(failure), errors.Is(context.Cause(ctx), providers.ErrAbandoned):
		return true
	default:
		return r.opts.FinalAttempt && ctx.Err() == nil
	}
}

// removeWritten removes what a failed export wrote, block download
// partials too when no attempt will follow.
func (r *run) removeWritten(ctx context.Context, final bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if final && r.opts.Output != nil {
		// Objects an earlier attempt started count too: this attempt may
		// have failed before it reached them.
		if started, err := r.opts.Output.Started(); err != nil {
			r.log.Warn("the uploads' state could not be listed", "error", err)
		} else {
			for _, n := range started {
				if !slices.Contains(r.objects, n) {
					r.objects = append(r.objects, n)
				}
			}
		}
		// The store is told even when ctx is cancelled (a user's cancel).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		for _, n := range r.objects {
			if err := r.opts.Output.Remove(rctx, n); err != nil {
				r.log.Warn("object of a failed export not removed", "error", err)
			}
		}
		cancel()
		r.objects = nil
	}
	for _, n := range r.written {
		_ = r.root.Remove(n)
	}
	r.written = nil
	if final {
		for _, n := range r.partials {
			_ = r.root.Remove(n)
		}
		r.partials = nil
	}
}

func (r *run) run(ctx context.Context) (*providers.ExportResult, error) {
	if len(r.exp.Disks) == 0 && len(r.exp.Files) == 0 {
		return nil, fmt.Errorf("export %s: the provider offers no files", r.exp.VM.Name)
	}
	items, err := r.items()
	if err != nil {
		return nil, err
	}
	if streamsOVA(r.opts) {
		if err := r.beginArchive(ctx, items); err != nil {
			return nil, err
		}
		defer r.endArchive()
	}
	got, err := r.fetch(ctx, items)
	if err != nil {
		return nil, err
	}
	switch {
	case r.arch != nil:
		return r.finishArchive(ctx, got)
	case r.opts.Format == providers.FormatDisks:
		return r.layoutDisks(ctx, got)
	default:
		return r.layoutOVF(ctx, got)
	}
}

// transferErr classifies a download failure.
func transferErr(vm string, err error) error {
	var se *transfer.StatusError
	if errors.As(err, &se) && (se.StatusCode == http.StatusUnauthorized || se.StatusCode == http.StatusForbidden) {
		return fmt.Errorf("download disks of %s: %w (%v)", vm, providers.ErrAuth, err)
	}
	return fmt.Errorf("download disks of %s: %w", vm, err)
}

// fileBase makes a VM name safe as a file name prefix.
func fileBase(name string) string {
	b := strings.Map(func(r rune) rune {
		switch {
		case r == '/' || r == '\\' || r == 0 || r == ':' || r < 0x20:
			return '_'
		}
		return r
	}, name)
	b = strings.Trim(b, ". ")
	if b == "" {
		b = "vm"
	}
	return b
}
