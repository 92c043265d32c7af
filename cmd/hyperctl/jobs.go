package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/client"
	"github.com/hypersdk/hypersdk/providers"
)

func (a *app) jobsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "Submit, list, follow and cancel export jobs",
		RunE:  groupRunE,
	}
	cmd.AddCommand(a.jobsSubmitCommand(), a.jobsListCommand(), a.jobsGetCommand(), a.jobsWatchCommand(),
		a.jobsCancelCommand(), a.jobsRetryCommand(), a.jobsLogsCommand(), a.jobsDeleteCommand())
	return cmd
}

// submitFlags are the export options of `jobs submit` and `export`.
type submitFlags struct {
	provider, vm, output, format, diskFormat, vhdType, compression, idempotencyKey, powerOffTimeout, bandwidth, method string
	compress, cleanupOVF, keepOVF, snapshot, powerOff, wait                                                            bool
	compressionLevel, parallel, maxAttempts                                                                            int
}

func (a *app) addSubmitFlags(cmd *cobra.Command, f *submitFlags) {
	fl := cmd.Flags()
	fl.StringVar(&f.provider, "provider", "", "provider instance (see 'hyperctl providers list')")
	fl.StringVar(&f.vm, "vm", "", "VM to export: inventory path, name, ID or UUID")
	fl.StringVar(&f.output, "output", "", "output directory on the daemon's host: relative to its export directory, or absolute under export.allowed_roots (default <export_dir>/<job id>); or object storage: s3://bucket/prefix/, gs://bucket/prefix/, azblob://account/container/prefix/ (a target in the daemon's output_targets)")
	fl.StringVar(&f.format, "format", "", "packaging: ovf, ova or disks (disk files + SHA-256 manifest + JSON metadata; default: the daemon's export.format)")
	fl.StringVar(&f.method, "method", "", "how the provider gets the VM out, for providers with several ways ('hyperctl providers list' shows them; AWS: ebs-direct, the default, or export-task); default: the provider's")
	fl.StringVar(&f.diskFormat, "disk-format", "", "disk files: vmdk (streamOptimized), or with --format disks raw (sparse), qcow2, vhd or vhdx (default: the daemon's export.disk_format)")
	fl.StringVar(&f.vhdType, "vhd-type", "", "VHD variant for --disk-format vhd: dynamic (default) or fixed (rounded up to a whole MiB, as Azure requires)")
	fl.BoolVar(&f.compress, "compress", false, "compress the OVA (.ova.gz or .ova.zst)")
	fl.StringVar(&f.compression, "compression", "", "compression for --compress: gzip or zstd")
	fl.IntVar(&f.compressionLevel, "compression-level", 0, "compression level, 0-9")
	fl.BoolVar(&f.cleanupOVF, "cleanup-ovf", false, "remove the intermediate OVF files once packed into the OVA (default: the daemon's export.cleanup_ovf, true)")
	fl.BoolVar(&f.keepOVF, "keep-ovf", false, "keep the OVF folder's files next to the OVA (a second copy of the disks)")
	fl.IntVar(&f.parallel, "parallel", 0, "disks downloaded at once (default: the daemon's export.parallel_downloads)")
	fl.BoolVar(&f.snapshot, "snapshot", false, "export a powered-on VM from a temporary snapshot")
	fl.BoolVar(&f.powerOff, "power-off", false, "shut a powered-on VM down before exporting")
	fl.StringVar(&f.powerOffTimeout, "power-off-timeout", "", "guest shutdown wait before a hard power-off, e.g. 5m")
	fl.StringVar(&f.bandwidth, "bandwidth-limit", "", "cap the download rate, e.g. 50MiB (per second)")
	fl.IntVar(&f.maxAttempts, "max-attempts", 0, "attempts before the job fails (default: the daemon's jobs.max_attempts)")
	fl.StringVar(&f.idempotencyKey, "idempotency-key", "", "key making a repeated submission return the original job (default: a random key per invocation)")
	fl.BoolVar(&f.wait, "wait", false, "watch the job with a progress bar until it ends; exit non-zero unless it succeeds")
	cmd.MarkFlagsMutuallyExclusive("snapshot", "power-off")
	cmd.MarkFlagsMutuallyExclusive("cleanup-ovf", "keep-ovf")
	bindFields(cmd, "", submitFields)
	_ = cmd.RegisterFlagCompletionFunc("provider", a.completeProviders)
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"ovf", "ova", "disks"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("disk-format", cobra.FixedCompletions(providers.DiskFormats(), cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("vhd-type", cobra.FixedCompletions([]string{providers.VHDDynamic, providers.VHDFixed}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("compression", cobra.FixedCompletions([]string{"gzip", "zstd"}, cobra.ShellCompDirectiveNoFileComp))
}

// request builds the API request; options left unset take the daemon's
// defaults.
func (f *submitFlags) request(cmd *cobra.Command) (apitypes.JobRequest, error) {
	changed := cmd.Flags().Changed
	req := apitypes.JobRequest{
		Provider: f.provider, VM: f.vm, Output: f.output, Format: f.format, DiskFormat: f.diskFormat, VHDType: f.vhdType, Compression: f.compression,
		ParallelDownloads: f.parallel, Snapshot: f.snapshot, PowerOff: f.powerOff, PowerOffTimeout: f.powerOffTimeout,
		MaxAttempts: f.maxAttempts, Method: f.method,
	}
	if changed("compress") {
		req.Compress = new(f.compress)
	}
	if changed("compression-level") {
		req.CompressionLevel = new(f.compressionLevel)
	}
	if changed("cleanup-ovf") {
		req.CleanupOVF = new(f.cleanupOVF)
	}
	if changed("keep-ovf") {
		req.CleanupOVF = new(!f.keepOVF)
	}
	if f.bandwidth != "" {
		n, err := parseBytes(f.bandwidth)
		if err != nil {
			return req, usageErrorf("--bandwidth-limit: %v", err)
		}
		req.BandwidthLimit = n
	}
	return req, nil
}

func (a *app) jobsSubmitCommand() *cobra.Command {
	f := &submitFlags{}
	cmd := &cobra.Command{
		Use:   "submit --provider P --vm V [--output DIR] [flags]",
		Short: "Submit an export job",
		Long: `Submit an export job to the daemon. Options not given take the daemon's export:
defaults. The submission carries an Idempotency-Key (random unless
--idempotency-key is given) and is retried with it when the connection fails
or the daemon answers 5xx, so it never creates two jobs.`,
		Example: `  hyperctl jobs submit --provider vc1 --vm /DC0/vm/web01 --format ova --wait
  hyperctl jobs submit --provider vc1 --vm web02 --snapshot --output web02 -o json`,
		Args: exactArgs(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if f.provider == "" || f.vm == "" {
				return usageErrorf("--provider and --vm are required")
			}
			req, err := f.request(cmd)
			if err != nil {
				return err
			}
			return a.submit(cmd.Context(), req, f)
		}),
	}
	a.addSubmitFlags(cmd, f)
	return cmd
}

// submit sends req and either prints the new job or watches it.
func (a *app) submit(ctx context.Context, req apitypes.JobRequest, f *submitFlags) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	sub, err := c.SubmitJob(ctx, req, f.idempotencyKey)
	if err != nil {
		return fmt.Errorf("submit %s %s: %w", req.Provider, req.VM, err)
	}
	j := sub.Job
	if sub.Replayed {
		fmt.Fprintf(a.env.stderr, "hyperctl: an earlier submission with this idempotency key created job %s; showing it\n", j.ID)
	}
	if !f.wait {
		return a.show(j, func(w io.Writer) error {
			fmt.Fprintf(w, "job %s %s: %s %s -> %s (%s)\n", j.ID, j.State, j.Provider, j.VM, cmp.Or(j.Spec.Options.OutputURL, j.Spec.Options.OutputDir), j.Spec.Options.Format)
			fmt.Fprintf(w, "follow it with: hyperctl jobs watch %s\n", j.ID)
			return nil
		})
	}
	fmt.Fprintf(a.env.stderr, "job %s submitted: %s %s -> %s\n", j.ID, j.Provider, j.VM, cmp.Or(j.Spec.Options.OutputURL, j.Spec.Options.OutputDir))
	return a.watch(ctx, c, j.ID)
}

func (a *app) jobsListCommand() *cobra.Command {
	var (
		states       []string
		provider, vm string
		since, until string
		limit        int
		all          bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first",
		Example: `  hyperctl jobs list --state running,queued
  hyperctl jobs list --since 24h --provider vc1 --all -o json`,
		Args: exactArgs(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			f := apitypes.JobFilter{Provider: provider, VM: vm, Limit: limit}
			for _, s := range states {
				for part := range strings.SplitSeq(s, ",") {
					if part = strings.TrimSpace(part); part != "" {
						f.States = append(f.States, apitypes.JobState(part))
					}
				}
			}
			now := a.env.now()
			var err error
			if since != "" {
				if f.CreatedAfter, err = parseSince(since, now); err != nil {
					return usageErrorf("--since: %v", err)
				}
			}
			if until != "" {
				if f.CreatedBefore, err = parseSince(until, now); err != nil {
					return usageErrorf("--until: %v", err)
				}
			}
			if limit < 0 || limit > 1000 {
				return usageErrorf("--limit must be between 1 and 1000")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			var list *apitypes.JobList
			if all {
				list = &apitypes.JobList{Items: []*apitypes.Job{}}
				if f.Limit == 0 {
					f.Limit = 500
				}
				for j, err := range c.AllJobs(cmd.Context(), f) {
					if err != nil {
						return fmt.Errorf("list jobs: %w", err)
					}
					list.Items = append(list.Items, j)
				}
			} else if list, err = c.ListJobs(cmd.Context(), f); err != nil {
				return fmt.Errorf("list jobs: %w", err)
			}
			return a.show(list, func(w io.Writer) error {
				if len(list.Items) == 0 {
					fmt.Fprintln(a.env.stderr, "No jobs found.")
					return nil
				}
				fmt.Fprintln(w, "ID\tSTATE\tPROVIDER\tVM\tPROGRESS\tSIZE\tAGE")
				for _, j := range list.Items {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, stateText(j), j.Provider, j.VM, progressText(j, now),
						sizeText(j), age(now, j.CreatedAt))
				}
				if list.NextCursor != "" {
					fmt.Fprintf(a.env.stderr, "More jobs match; use --all, or a larger --limit.\n")
				}
				return nil
			})
		}),
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&states, "state", nil, "only jobs in these states (queued, running, succeeded, failed, cancelled), comma-separated")
	fl.StringVar(&provider, "provider", "", "only jobs of this provider instance")
	fl.StringVar(&vm, "vm", "", "only jobs for this VM identifier (as submitted)")
	fl.StringVar(&since, "since", "", "only jobs created since a duration ago (90m, 2h, 7d) or a time (2026-01-31, RFC 3339)")
	fl.StringVar(&until, "until", "", "only jobs created before a duration ago or a time")
	fl.IntVar(&limit, "limit", 0, "at most this many jobs (server default 50, max 1000); with --all, the page size")
	fl.BoolVar(&all, "all", false, "fetch every matching job, following the server's pages")
	_ = cmd.RegisterFlagCompletionFunc("state", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		out := make([]string, len(apitypes.JobStates()))
		for i, s := range apitypes.JobStates() {
			out[i] = string(s)
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
	_ = cmd.RegisterFlagCompletionFunc("provider", a.completeProviders)
	return cmd
}

func stateText(j *apitypes.Job) string {
	s := string(j.State)
	switch {
	case j.State == apitypes.JobFailed && j.ErrorKind != "":
		s += " (" + j.ErrorKind + ")"
	case j.CancelRequested && !j.State.Terminal():
		s += " (cancelling)"
	}
	return s
}

func progressText(j *apitypes.Job, now time.Time) string {
	p := j.Progress
	switch j.State {
	case apitypes.JobRunning:
		if p.BytesTotal > 0 {
			return fmt.Sprintf("%s %s", orDash(p.Phase), percent(p.Percent))
		}
		return orDash(p.Phase)
	case apitypes.JobQueued:
		if j.NextAttemptAt != nil {
			return fmt.Sprintf("retry %d/%d in %s", j.Attempt+1, j.MaxAttempts, humanDuration(j.NextAttemptAt.Sub(now).Round(time.Second)))
		}
		return "-"
	case apitypes.JobSucceeded:
		return "100%"
	}
	return "-"
}

func sizeText(j *apitypes.Job) string {
	if j.Result != nil && j.Result.Bytes > 0 {
		return humanBytes(j.Result.Bytes)
	}
	if j.Progress.BytesTotal > 0 {
		return humanBytes(j.Progress.BytesTotal)
	}
	return "-"
}

func (a *app) jobsGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "get ID",
		Short:             "Show a job",
		Args:              exactArgs("ID"),
		ValidArgsFunction: a.completeJobs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			j, err := c.GetJob(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("get job %s: %w", args[0], err)
			}
			return a.show(j, func(w io.Writer) error { return a.describeJob(w, j) })
		}),
	}
}

// describeJob prints a job as labelled lines, then its files.
func (a *app) describeJob(w io.Writer, j *apitypes.Job) error {
	now := a.env.now()
	o := j.Spec.Options
	row := func(k, v string) { fmt.Fprintf(w, "%s:\t%s\n", k, v) }
	row("ID", j.ID)
	row("State", stateText(j))
	row("Provider", j.Provider)
	row("VM", j.VM)
	format := string(o.Format)
	if o.DiskFormat != "" {
		format += ", " + string(o.DiskFormat) + " disks"
	}
	if o.Compress {
		format += ", " + o.Compression + " compressed"
	}
	row("Output", fmt.Sprintf("%s (%s)", cmp.Or(o.OutputURL, o.OutputDir), format))
	var opts []string
	if o.Snapshot {
		opts = append(opts, "snapshot")
	}
	if o.PowerOff {
		opts = append(opts, "power-off")
	}
	if o.ParallelDownloads > 0 {
		opts = append(opts, fmt.Sprintf("%d parallel downloads", o.ParallelDownloads))
	}
	if o.BandwidthLimit > 0 {
		opts = append(opts, "limit "+humanRate(float64(o.BandwidthLimit)))
	}
	if len(opts) > 0 {
		row("Options", strings.Join(opts, ", "))
	}
	row("Attempt", fmt.Sprintf("%d of %d", j.Attempt, j.MaxAttempts))
	if !j.State.Terminal() || j.State == apitypes.JobSucceeded {
		row("Progress", progressLine(j))
	}
	row("Submitted", fmt.Sprintf("%s by %s", when(now, &j.CreatedAt), orDash(j.SubmittedBy)))
	row("Started", when(now, j.StartedAt))
	row("Finished", when(now, j.FinishedAt))
	if j.StartedAt != nil && j.FinishedAt != nil {
		row("Duration", humanDuration(j.FinishedAt.Sub(*j.StartedAt)))
	}
	if j.NextAttemptAt != nil {
		row("Next attempt", when(now, j.NextAttemptAt))
	}
	if j.Node != "" {
		row("Node", j.Node)
	}
	if j.Error != "" {
		kind := ""
		if j.ErrorKind != "" {
			kind = " (" + j.ErrorKind + ")"
		}
		row("Error", j.Error+kind)
	}
	if r := j.Result; r != nil {
		row("Result", fmt.Sprintf("%s in %s (%s)", humanBytes(r.Bytes), humanDuration(r.Duration), humanRate(r.Throughput)))
		if r.Manifest != "" {
			row("Manifest", r.Manifest)
		}
		if len(r.Files) > 0 {
			fmt.Fprintln(w, "\nFILE\tKIND\tSIZE\tSHA-256")
			for _, f := range r.Files {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", f.Path, f.Kind, humanBytes(f.Size), f.SHA256)
			}
		}
	}
	return nil
}

// progressLine is "phase 45.0% (1.2 MiB of 3.0 MiB, 5.0 MiB/s, ETA 3s)".
func progressLine(j *apitypes.Job) string {
	p := j.Progress
	if j.State == apitypes.JobQueued && p.Phase == "" {
		return "waiting for a worker"
	}
	s := orDash(p.Phase)
	switch {
	case p.BytesTotal > 0:
		s += fmt.Sprintf(" %s (%s of %s", percent(p.Percent), humanBytes(p.BytesDone), humanBytes(p.BytesTotal))
		if j.State == apitypes.JobRunning && p.RateBps > 0 {
			s += ", " + humanRate(p.RateBps)
		}
		if j.State == apitypes.JobRunning && p.ETASeconds != nil {
			s += ", ETA " + eta(*p.ETASeconds)
		}
		s += ")"
	case p.BytesDone > 0 && j.State == apitypes.JobRunning:
		// The total is not known yet (streamed disks): no percentage, no ETA.
		s += fmt.Sprintf(" (%s of unknown", humanBytes(p.BytesDone))
		if p.RateBps > 0 {
			s += ", " + humanRate(p.RateBps)
		}
		s += ")"
	}
	return s
}

// eta renders the daemon's ETA estimate.
func eta(seconds float64) string {
	if seconds < 1 {
		return "<1s"
	}
	return humanDuration(time.Duration(seconds * float64(time.Second)).Round(time.Second))
}

func (a *app) jobsWatchCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a job's progress until it ends",
		Long: `Show a live progress bar (phase, bytes, percent, rate, ETA) until the job ends.
Exits 0 when it succeeded, 1 when it failed or was cancelled (printing why).
Without a terminal, progress is printed as plain lines.`,
		Args:              exactArgs("ID"),
		ValidArgsFunction: a.completeJobs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			return a.watch(cmd.Context(), c, args[0])
		}),
	}
}

func (a *app) jobsCancelCommand() *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a job",
		Long: `Cancel a job. A queued job is cancelled at once; a running export is told to
stop and clean up, which takes a few seconds. With --wait, hyperctl waits
until the job has ended and exits 0 only if it ended cancelled.`,
		Args:              exactArgs("ID"),
		ValidArgsFunction: a.completeJobs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			j, err := c.CancelJob(ctx, args[0])
			if err != nil {
				return fmt.Errorf("cancel job %s: %w", args[0], err)
			}
			if !j.State.Terminal() && wait {
				if j, err = c.WatchJob(ctx, j.ID, a.env.pollInterval, nil); err != nil {
					return fmt.Errorf("waiting for job %s to stop: %w", args[0], err)
				}
			}
			if err := a.show(j, func(w io.Writer) error {
				if j.State == apitypes.JobCancelled {
					fmt.Fprintf(w, "job %s cancelled\n", j.ID)
				} else if !j.State.Terminal() {
					fmt.Fprintf(w, "job %s is stopping (cancel requested); 'hyperctl jobs watch %s' follows it\n", j.ID, j.ID)
				}
				return nil
			}); err != nil {
				return err
			}
			if j.State.Terminal() && j.State != apitypes.JobCancelled {
				return fmt.Errorf("job %s ended %s before the cancel took effect", j.ID, j.State)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the job has stopped")
	return cmd
}

func (a *app) jobsRetryCommand() *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "retry ID",
		Short: "Run a failed or cancelled job again, as a new job",
		Long: `Submit a new job with the same options as a failed or cancelled job and print
it. A job that wrote to its default output directory gets a new one. With
--wait, hyperctl follows the new job and exits 0 only if it succeeded.`,
		Args:              exactArgs("ID"),
		ValidArgsFunction: a.completeJobs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			j, err := c.RetryJob(ctx, args[0])
			if err != nil {
				return fmt.Errorf("retry job %s: %w", args[0], err)
			}
			if wait {
				if j, err = c.WatchJob(ctx, j.ID, a.env.pollInterval, nil); err != nil {
					return fmt.Errorf("waiting for job %s: %w", j.ID, err)
				}
			}
			if err := a.show(j, func(w io.Writer) error {
				fmt.Fprintf(w, "job %s (retry of %s): %s\n", j.ID, args[0], j.State)
				return nil
			}); err != nil {
				return err
			}
			if wait && j.State != apitypes.JobSucceeded {
				return fmt.Errorf("job %s %s: %s", j.ID, j.State, j.Error)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the new job until it ends")
	return cmd
}

func (a *app) jobsLogsCommand() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs ID",
		Short: "Print a job's log",
		Long: `Print a job's log lines as TIME LEVEL MESSAGE key=value…; with -o json one
JSON object per line (as the API streams them), with -o yaml one document per
line. With --follow, new lines are printed as they come until the job ends.`,
		Args:              exactArgs("ID"),
		ValidArgsFunction: a.completeJobs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			err = c.JobLogs(cmd.Context(), args[0], client.LogOptions{Follow: follow}, a.printLogLine)
			if err != nil {
				return fmt.Errorf("logs of job %s: %w", args[0], err)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until the job ends")
	return cmd
}

func (a *app) printLogLine(l apitypes.LogLine) error {
	w := a.env.stdout
	switch a.format {
	case "json":
		return writeJSON(w, l, false)
	case "yaml":
		if _, err := io.WriteString(w, "---\n"); err != nil {
			return err
		}
		return writeYAML(w, l)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-5s %s", l.At.Local().Format("2006-01-02 15:04:05.000"), strings.ToUpper(l.Level), l.Message)
	for _, k := range slices.Sorted(maps.Keys(l.Attrs)) {
		if k == "job_id" {
			continue // every line of the job has it
		}
		b.WriteString(" " + k + "=" + attrValue(l.Attrs[k]))
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// attrValue formats a log attribute like slog's text handler does.
func attrValue(v any) string {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		s = strconv.FormatBool(x)
	case nil:
		return "null"
	default:
		var b strings.Builder
		_ = writeJSON(&b, x, false)
		return strings.TrimSpace(b.String())
	}
	if s == "" || strings.ContainsAny(s, " \t\n\"=") {
		return strconv.Quote(s)
	}
	return s
}

func (a *app) jobsDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "delete ID",
		Short:             "Delete a finished job and its logs (exported files are kept); needs the admin role",
		Args:              exactArgs("ID"),
		ValidArgsFunction: a.completeJobs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.DeleteJob(cmd.Context(), args[0]); err != nil {
				return fmt.Errorf("delete job %s: %w", args[0], err)
			}
			if a.format == "table" {
				fmt.Fprintf(a.env.stdout, "job %s deleted\n", args[0])
			}
			return nil
		}),
	}
}

// completeJobs offers the IDs of recent jobs.
func (a *app) completeJobs(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := a.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	list, err := c.ListJobs(cmd.Context(), apitypes.JobFilter{Limit: 100})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]string, 0, len(list.Items))
	for _, j := range list.Items {
		out = append(out, j.ID+"\t"+string(j.State)+" "+j.Provider+"/"+j.VM)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeProviders offers the configured provider instances.
func (a *app) completeProviders(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	c, err := a.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	provs, err := c.Providers(cmd.Context())
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]string, 0, len(provs))
	for _, p := range provs {
		out = append(out, p.Name+"\t"+p.Type)
	}
	sort.Strings(out)
	return out, cobra.ShellCompDirectiveNoFileComp
}
