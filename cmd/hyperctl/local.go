package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/daemon/jobs"
	"github.com/hypersdk/hypersdk/objstore"
	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/progress"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/vsphere"
	"github.com/hypersdk/hypersdk/providers/vsphere/vcsim"
)

// localFlags are the flags of the standalone mode: where the vCenter is.
type localFlags struct {
	url, username, thumbprint string
	demo                      bool
}

func addLocalFlags(cmd *cobra.Command, f *localFlags) {
	fl := cmd.Flags()
	fl.StringVar(&f.url, "url", "", "with --local: vCenter or ESXi URL, e.g. https://user@vc.example.com/sdk (env GOVC_URL)")
	fl.StringVar(&f.username, "username", "", "with --local: user name (env GOVC_USERNAME; or in --url)")
	fl.StringVar(&f.thumbprint, "thumbprint", "", "with --local: pin the vCenter certificate by its SHA-1 or SHA-256 thumbprint")
	fl.BoolVar(&f.demo, "demo", false, "with --local: export from a simulated vCenter started in this process (the demo VMs of 'hypervisord --demo')")
}

// exportLocal is `hyperctl export --local`: the same provider code the
// daemon runs, in this process, with no daemon, store or token. It reads
// govc's environment (GOVC_URL, GOVC_USERNAME, GOVC_PASSWORD,
// GOVC_INSECURE) so govc users feel at home; a password is taken from the
// environment or a prompt, and only with a warning from the command line.
func (a *app) exportLocal(cmd *cobra.Command, f *exportFlags) error {
	if f.provider != "" {
		return usageErrorf("--provider names a daemon's provider; with --local give --url (or --demo) instead")
	}
	if f.local.demo {
		for _, name := range []string{"url", "username", "thumbprint"} {
			if cmd.Flags().Changed(name) {
				return usageErrorf("--%s and --demo exclude each other: --demo starts its own vCenter", name)
			}
		}
	}
	if f.vm == "" {
		msg := "with --local, --vm is required"
		if f.local.demo {
			msg += " (the demo VMs: " + strings.Join(demoVMs(), ", ") + ")"
		}
		return usageErrorf("%s", msg)
	}
	if f.output == "" {
		// Like govc export.ovf: a directory named after the VM, here.
		f.output = "./" + path.Base(strings.TrimRight(f.vm, "/"))
	}
	opts, err := f.localOptions(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	var vc *vsphere.Config
	var host string
	if f.local.demo {
		// The same demo backend the daemon registers for --demo.
		demo, stop, err := vsphere.StartDemo(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			return fmt.Errorf("demo vCenter: %w", err)
		}
		defer stop()
		vc = demo
		if u, err := url.Parse(demo.URL); err == nil {
			host = u.Host
		}
		fmt.Fprintf(a.env.stderr, "hyperctl: demo: a simulated vCenter with the VMs %s runs in this process until the export ends\n", strings.Join(demoVMs(), ", "))
	} else if vc, host, err = a.localVCenter(f); err != nil {
		return err
	}
	return a.runLocalExport(ctx, f, vc, host, opts)
}

// demoVMs are the names of the demo vCenter's VMs.
func demoVMs() []string {
	var names []string
	for _, vm := range vcsim.DemoSpec().VMs {
		names = append(names, vm.Name)
	}
	return names
}

// localVCenter works out the vCenter of --local from the flags and govc's
// environment.
func (a *app) localVCenter(f *exportFlags) (*vsphere.Config, string, error) {
	getenv := a.env.getenv
	raw := f.local.url
	if raw == "" {
		raw = getenv("GOVC_URL")
	}
	if raw == "" {
		return nil, "", usageErrorf("with --local, give the vCenter as --url https://user@host/sdk or GOVC_URL (or try --demo)")
	}
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, "", usageErrorf("--url %q is not a URL", raw)
	}
	username := f.local.username
	if username == "" {
		username = getenv("GOVC_USERNAME")
	}
	password, fromURL := "", false
	if u.User != nil {
		if username == "" {
			username = u.User.Username()
		}
		password, fromURL = u.User.Password()
	}
	if fromURL {
		fmt.Fprintln(a.env.stderr, "hyperctl: warning: a password in --url is visible in the process list and shell history; prefer GOVC_PASSWORD or the prompt")
	}
	if password == "" {
		password = getenv("GOVC_PASSWORD")
	}
	if username == "" {
		return nil, "", usageErrorf("with --local, give a user name: in --url (https://user@host/sdk), --username or GOVC_USERNAME")
	}
	if password == "" {
		if a.env.promptPassword == nil {
			return nil, "", usageErrorf("no password: set GOVC_PASSWORD, or run in a terminal to be prompted")
		}
		if password, err = a.env.promptPassword(fmt.Sprintf("Password for %s@%s: ", username, u.Host)); err != nil {
			return nil, "", err
		}
	}
	insecure := a.insecure
	if v := getenv("GOVC_INSECURE"); v != "" {
		if b, err := strconv.ParseBool(v); err == nil {
			insecure = insecure || b
		}
	}
	u.User = nil
	return &vsphere.Config{
		URL: u.String(), Username: username, Password: config.NewSecret(password), Insecure: insecure, Thumbprint: f.local.thumbprint,
	}, u.Host, nil
}

// runLocalExport exports f.vm from the vCenter vc in this process.
func (a *app) runLocalExport(ctx context.Context, f *exportFlags, vc *vsphere.Config, host string, opts providers.ExportOptions) error {
	level := slog.LevelWarn
	log := slog.New(slog.NewTextHandler(a.env.stderr, &slog.HandlerOptions{Level: level}))
	p, err := vsphere.NewProvider("local", *vc, vsphere.PoolConfig{Enabled: true, MaxConnections: 2}, log)
	if err != nil {
		return usageErrorf("%v", err)
	}
	if err := p.Connect(ctx); err != nil {
		return fmt.Errorf("connect to %s: %w", host, err)
	}
	defer p.Disconnect()

	bars := a.newFileBars()
	opts.Logger = log
	opts.Progress = bars.update
	res, err := pipeline.Export(ctx, p, f.vm, opts)
	bars.done(err == nil)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("export cancelled; the export lease was aborted and partial files removed")
		}
		return fmt.Errorf("export %s: %w", f.vm, err)
	}
	return a.show(res, func(w io.Writer) error {
		fmt.Fprintf(w, "exported %s to %s in %s (%s/s)\n", res.VM.Path, res.OutputDir, res.Duration.Round(time.Millisecond),
			humanBytes(int64(res.Throughput)))
		tw := newTable(w)
		fmt.Fprintln(tw, "FILE\tSIZE\tSHA-256")
		for _, file := range res.Files {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", file.Path, humanBytes(file.Size), file.SHA256)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		printArchive(w, res)
		return nil
	})
}

// localOptions turns the shared job flags into export options, checked
// and defaulted exactly as the daemon checks a job (jobs.ResolveOptions,
// with the defaults of its configuration); problems name the flags.
func (f *exportFlags) localOptions(cmd *cobra.Command) (providers.ExportOptions, error) {
	req, err := f.request(cmd)
	if err != nil {
		return providers.ExportOptions{}, err
	}
	o, problems := jobs.ResolveOptions(req, config.Default().Export)
	// The standalone export is vSphere's, which has one method.
	if msg := providers.MethodProblem((*vsphere.Provider)(nil), o.Method); msg != "" {
		problems.Addf("method", "%s", msg)
	}
	if len(problems) > 0 {
		return o, usageErrorf("invalid export options:\n  %s", namedProblems(cmd, problems))
	}
	if objstore.IsURL(f.output) {
		return o, usageErrorf("--output: object-storage outputs are written by the daemon, which holds the targets' credentials (output_targets); export without --local")
	}
	o.OutputDir = f.output
	// What the platform side tags with the job id must name this run.
	o.JobID = "local-" + uuid.NewString()
	return o, nil
}

// fileBars draws one bar per exported file and one for the whole export on
// a terminal, or prints a line per finished file otherwise.
type fileBars struct {
	out   io.Writer
	p     *mpb.Progress // nil without a terminal
	mu    sync.Mutex
	total *mpb.Bar
	files map[string]*mpb.Bar
	seen  map[string]bool
	phase string
	// known is the export's total once known (0 before), doneBytes the
	// bytes so far: what the total bar's text shows. Atomics, not mu: mpb
	// renders decorators while update holds mu and waits on the bar.
	known, doneBytes atomic.Int64
}

func (b *fileBars) totalText(decor.Statistics) string {
	known, done := b.known.Load(), b.doneBytes.Load()
	if known <= 0 {
		return humanBytes(done) + " / unknown"
	}
	return humanBytes(done) + " / " + humanBytes(known)
}

func (b *fileBars) percentText(decor.Statistics) string {
	known, done := b.known.Load(), b.doneBytes.Load()
	if known <= 0 {
		return ""
	}
	return percent(100 * float64(done) / float64(known))
}

func (a *app) newFileBars() *fileBars {
	b := &fileBars{out: a.env.stderr, files: map[string]*mpb.Bar{}, seen: map[string]bool{}}
	if a.env.isTerminal(a.env.stderr) {
		b.p = mpb.New(mpb.WithOutput(a.env.stderr), mpb.WithRefreshRate(200*time.Millisecond))
	}
	return b
}

func (b *fileBars) update(pr progress.Report) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if pr.Phase != b.phase {
		b.phase = pr.Phase
		if b.p == nil {
			fmt.Fprintf(b.out, "%s…\n", pr.Phase)
		}
	}
	if b.p == nil {
		if pr.Item != "" && pr.ItemSize > 0 && pr.ItemBytes >= pr.ItemSize && !b.seen[pr.Item] {
			b.seen[pr.Item] = true
			fmt.Fprintf(b.out, "  %s: %s\n", pr.Item, humanBytes(pr.ItemSize))
		}
		return
	}
	if b.total == nil && (pr.BytesTotal > 0 || pr.BytesDone > 0) {
		b.total = b.p.New(0, mpb.BarStyle(), mpb.BarPriority(1<<30),
			mpb.PrependDecorators(decor.Name("total", decor.WCSyncSpaceR), decor.Any(b.totalText, decor.WCSyncSpace)),
			mpb.AppendDecorators(decor.Any(b.percentText, decor.WC{W: 5}), decor.EwmaSpeed(decor.SizeB1024(0), "% .1f", 30, decor.WCSyncSpace)))
	}
	if b.total != nil {
		// A total of 0 is unknown (disks streamed without a length): the bar
		// shows the bytes so far, no percentage and no ETA, until it is known.
		b.known.Store(max(pr.BytesTotal, 0))
		b.doneBytes.Store(pr.BytesDone)
		if pr.BytesTotal > 0 {
			b.total.SetTotal(pr.BytesTotal, false)
		}
		b.total.EwmaSetCurrent(pr.BytesDone, 200*time.Millisecond)
	}
	if pr.Item == "" || pr.Phase != progress.PhaseDownloading {
		return
	}
	bar, ok := b.files[pr.Item]
	if !ok {
		bar = b.p.New(0, mpb.BarStyle(),
			mpb.PrependDecorators(decor.Name(pr.Item, decor.WCSyncSpaceR), decor.Current(decor.SizeB1024(0), "% .1f", decor.WCSyncSpace)),
			mpb.AppendDecorators(decor.OnComplete(decor.Name(""), "done")))
		b.files[pr.Item] = bar
	}
	if pr.ItemSize > 0 {
		bar.SetTotal(pr.ItemSize, pr.ItemBytes >= pr.ItemSize)
	}
	bar.SetCurrent(pr.ItemBytes)
}

func (b *fileBars) done(ok bool) {
	if b.p == nil {
		return
	}
	b.mu.Lock()
	for _, bar := range b.files {
		if ok {
			bar.SetTotal(bar.Current(), true)
		} else {
			bar.Abort(false)
		}
	}
	if b.total != nil {
		if ok {
			b.total.SetTotal(b.total.Current(), true)
		} else {
			b.total.Abort(false)
		}
	}
	b.mu.Unlock()
	b.p.Wait()
}

// promptTerminalPassword reads a password without echo from the terminal.
func promptTerminalPassword(stderr io.Writer) func(string) (string, error) {
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return nil
	}
	return func(prompt string) (string, error) {
		fmt.Fprint(stderr, prompt)
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(stderr)
		return string(b), err
	}
}
