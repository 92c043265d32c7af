package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // schedule times show in the schedule's zone also where the OS has no zone database (Windows)

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/client"
)

func (a *app) schedulesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "schedules",
		Aliases: []string{"schedule"},
		Short:   "Run exports on cron schedules: create, list, pause, run now, history",
		Long: `A schedule submits an export job from its template at every due time of a cron
expression read in an IANA time zone. Schedules live in the daemon's database:
they survive restarts, and with several daemons on one database each due time
runs exactly once. Every run is recorded in the schedule's history with its
job, final status and duration.

Expressions: 5 fields (minute hour day-of-month month day-of-week, e.g.
'30 2 * * *' or '0 */6 * * 1-5'), a descriptor (@yearly, @monthly, @weekly,
@daily, @hourly) or '@every 90m'. Quote them: the shell splits and expands
them otherwise. 'hyperctl schedules next EXPR' shows when one would run.

Daylight saving: expressions follow the wall clock of the schedule's zone and
each matching time runs once. A time skipped when clocks go forward runs
shifted by the gap (02:30 runs at 03:30 that day); a time repeated when they go
back runs at its first occurrence only. '@every' counts absolute time.

Policies: --overlap skip (default: no run while the previous one is queued or
running; the skip is recorded), queue (the run waits for it) or allow;
--catch-up once (default: due times missed while no daemon ran are made up by
one run on start) or none. A paused schedule does not make up for the time it
was paused. --end-at and --max-runs end a schedule.

Creating, changing, pausing and running need the operator role, deleting the
admin role, the rest viewer.`,
		RunE: groupRunE,
	}
	cmd.AddCommand(a.schedulesCreateCommand(), a.schedulesListCommand(), a.schedulesGetCommand(), a.schedulesUpdateCommand(),
		a.schedulesEnableCommand(true), a.schedulesEnableCommand(false), a.schedulesDeleteCommand(), a.schedulesRunCommand(),
		a.schedulesHistoryCommand(), a.schedulesNextCommand())
	return cmd
}

// submissionOnlyFlags are export flags that concern one submission, not a
// job template: schedules hide and refuse them.
var submissionOnlyFlags = map[string]string{
	"wait":            "a schedule is not a job; 'hyperctl schedules run NAME --wait' runs it now and follows the job",
	"idempotency-key": "the schedule's name keeps it from being created twice, and every run is a new job",
}

// addTemplateFlags adds the export flags of 'jobs submit' for a job
// template.
func (a *app) addTemplateFlags(cmd *cobra.Command, f *submitFlags) {
	a.addSubmitFlags(cmd, f)
	bindFields(cmd, "job.", submitFields)
	for name := range submissionOnlyFlags {
		_ = cmd.Flags().MarkHidden(name)
	}
}

// templateRequest is submitFlags.request for a job template.
func templateRequest(cmd *cobra.Command, f *submitFlags) (apitypes.JobRequest, error) {
	for _, name := range slices.Sorted(maps.Keys(submissionOnlyFlags)) {
		if cmd.Flags().Changed(name) {
			return apitypes.JobRequest{}, usageErrorf("--%s does not apply to a schedule: %s", name, submissionOnlyFlags[name])
		}
	}
	return f.request(cmd)
}

// templateFields copies the field each export flag sets from one request
// to another; update uses it to change only the flags given.
var templateFields = map[string]func(dst, src *apitypes.JobRequest){
	"provider":          func(d, s *apitypes.JobRequest) { d.Provider = s.Provider },
	"vm":                func(d, s *apitypes.JobRequest) { d.VM = s.VM },
	"output":            func(d, s *apitypes.JobRequest) { d.Output = s.Output },
	"format":            func(d, s *apitypes.JobRequest) { d.Format = s.Format },
	"disk-format":       func(d, s *apitypes.JobRequest) { d.DiskFormat = s.DiskFormat },
	"vhd-type":          func(d, s *apitypes.JobRequest) { d.VHDType = s.VHDType },
	"compress":          func(d, s *apitypes.JobRequest) { d.Compress = s.Compress },
	"compression":       func(d, s *apitypes.JobRequest) { d.Compression = s.Compression },
	"compression-level": func(d, s *apitypes.JobRequest) { d.CompressionLevel = s.CompressionLevel },
	"cleanup-ovf":       func(d, s *apitypes.JobRequest) { d.CleanupOVF = s.CleanupOVF },
	"keep-ovf":          func(d, s *apitypes.JobRequest) { d.CleanupOVF = s.CleanupOVF },
	"parallel":          func(d, s *apitypes.JobRequest) { d.ParallelDownloads = s.ParallelDownloads },
	"snapshot": func(d, s *apitypes.JobRequest) {
		if d.Snapshot = s.Snapshot; s.Snapshot {
			d.PowerOff = false // one or the other
		}
	},
	"power-off": func(d, s *apitypes.JobRequest) {
		if d.PowerOff = s.PowerOff; s.PowerOff {
			d.Snapshot = false
		}
	},
	"power-off-timeout": func(d, s *apitypes.JobRequest) { d.PowerOffTimeout = s.PowerOffTimeout },
	"bandwidth-limit":   func(d, s *apitypes.JobRequest) { d.BandwidthLimit = s.BandwidthLimit },
	"max-attempts":      func(d, s *apitypes.JobRequest) { d.MaxAttempts = s.MaxAttempts },
	"method":            func(d, s *apitypes.JobRequest) { d.Method = s.Method },
}

// mergeTemplate applies the export flags given on the command line to the
// current template; changed is false when none was given.
func mergeTemplate(cmd *cobra.Command, f *submitFlags, cur apitypes.JobRequest) (merged apitypes.JobRequest, changed bool, err error) {
	given, err := templateRequest(cmd, f)
	if err != nil {
		return cur, false, err
	}
	cmd.Flags().Visit(func(fl *pflag.Flag) {
		if set, ok := templateFields[fl.Name]; ok {
			set(&cur, &given)
			changed = true
		}
	})
	return cur, changed, nil
}

// scheduleFlags are the timing and policy flags of create and update.
type scheduleFlags struct {
	timezone, overlap, catchUp, endAt string
	maxRuns                           int
}

func (s *scheduleFlags) add(cmd *cobra.Command, defaults bool) {
	fl := cmd.Flags()
	def := func(d string) string {
		if defaults {
			return " (default " + d + ")"
		}
		return ""
	}
	fl.StringVar(&s.timezone, "timezone", "", "IANA time zone the expression is read in, e.g. Europe/Berlin"+def("UTC"))
	fl.StringVar(&s.overlap, "overlap", "", "while the previous run is queued or running: skip, queue or allow"+def("skip"))
	fl.StringVar(&s.catchUp, "catch-up", "", "due times missed while no daemon ran: once (one run on start) or none"+def("once"))
	fl.StringVar(&s.endAt, "end-at", "", "no runs after this time (RFC 3339, e.g. 2026-12-31T23:59:00+01:00)")
	fl.IntVar(&s.maxRuns, "max-runs", 0, "stop after this many runs (manual runs count)")
	bindFields(cmd, "", map[string]string{"timezone": "timezone", "overlap": "overlap", "catch-up": "catch_up", "end-at": "end_at", "max-runs": "max_runs"})
	_ = cmd.RegisterFlagCompletionFunc("overlap", cobra.FixedCompletions(
		[]string{apitypes.OverlapSkip, apitypes.OverlapQueue, apitypes.OverlapAllow}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("catch-up", cobra.FixedCompletions(
		[]string{apitypes.CatchUpOnce, apitypes.CatchUpNone}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("timezone", completeZones)
}

// parsed returns --end-at and --max-runs when given.
func (s *scheduleFlags) parsed(cmd *cobra.Command) (endAt *time.Time, maxRuns *int, err error) {
	if cmd.Flags().Changed("end-at") {
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(s.endAt))
		if err != nil {
			return nil, nil, usageErrorf("--end-at %q: want an RFC 3339 time such as 2026-12-31T23:59:00Z or 2026-12-31T23:59:00+01:00", s.endAt)
		}
		endAt = &t
	}
	if cmd.Flags().Changed("max-runs") {
		if s.maxRuns < 1 {
			return nil, nil, usageErrorf("--max-runs must be at least 1")
		}
		maxRuns = new(s.maxRuns)
	}
	return endAt, maxRuns, nil
}

// completeZones offers common IANA zones (any other is accepted too).
func completeZones(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return []string{"UTC", "Europe/London", "Europe/Berlin", "Europe/Paris", "America/New_York", "America/Chicago",
		"America/Denver", "America/Los_Angeles", "Asia/Tokyo", "Asia/Kolkata", "Australia/Sydney"}, cobra.ShellCompDirectiveNoFileComp
}

// exprArgs checks the arguments of commands taking names followed by an
// expression, explaining the usual mistake: an unquoted expression.
func exprArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > len(names) {
			return usageErrorf("%s takes %d argument(s) (%s), got %d: quote the expression, e.g. '30 2 * * *' (the shell splits and expands it otherwise)",
				cmd.CommandPath(), len(names), strings.Join(names, " "), len(args))
		}
		return exactArgs(names...)(cmd, args)
	}
}

func (a *app) schedulesCreateCommand() *cobra.Command {
	f := &submitFlags{}
	s := &scheduleFlags{}
	var disabled bool
	cmd := &cobra.Command{
		Use:   "create NAME 'CRON' --provider P --vm V [--timezone ZONE] [--overlap skip|queue|allow] [--catch-up once|none] [--end-at TIME] [--max-runs N] [--disabled] [export flags]",
		Short: "Create a schedule: an export submitted at every due time",
		Long: `Create a schedule (operator role). NAME is unique: letters, digits, '.', '_' and
'-'. The export flags are those of 'hyperctl export' and make the job
template; options not given take the daemon's defaults when each job is
submitted. Everything is checked before anything is saved: a bad expression,
time zone, policy or export option is refused with the problems named.

Without --output every run exports to <export directory>/<job id>, so each run
is kept. With --output every run writes to the same directory, replacing the
previous run's files.`,
		Example: `  hyperctl schedules create nightly-db01 '30 2 * * *' --timezone Europe/Berlin \
      --provider vc1 --vm /DC0/vm/prod/db01 --format ova --compress --compression zstd
  hyperctl schedules create web-6h '0 */6 * * *' --provider vc1 --vm web01 --snapshot --overlap queue
  hyperctl schedules create migration-wave1 '@every 2h' --provider vc1 --vm app01 --max-runs 3`,
		Args:              exprArgs("NAME", "CRON"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if f.provider == "" || f.vm == "" {
				return usageErrorf("--provider and --vm are required: the export the schedule runs")
			}
			req, err := templateRequest(cmd, f)
			if err != nil {
				return err
			}
			endAt, maxRuns, err := s.parsed(cmd)
			if err != nil {
				return err
			}
			spec := apitypes.ScheduleSpec{Name: args[0], Schedule: args[1], Timezone: s.timezone, Job: req,
				Overlap: s.overlap, CatchUp: s.catchUp, EndAt: endAt, MaxRuns: maxRuns}
			if disabled {
				spec.Enabled = new(false)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			sc, err := c.CreateSchedule(cmd.Context(), spec)
			if err != nil {
				return fmt.Errorf("create schedule %s: %w", args[0], err)
			}
			return a.show(sc, func(w io.Writer) error {
				fmt.Fprintf(w, "schedule %s created\n\n", sc.Name)
				a.describeSchedule(w, sc)
				return nil
			})
		}),
	}
	a.addTemplateFlags(cmd, f)
	s.add(cmd, true)
	cmd.Flags().BoolVar(&disabled, "disabled", false, "create it paused ('hyperctl schedules enable NAME' starts it)")
	bindFields(cmd, "", map[string]string{"disabled": "enabled"})
	bindArg(cmd, "name", "NAME")
	bindArg(cmd, "schedule", "CRON")
	return cmd
}

func (a *app) schedulesListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List schedules with their next and last runs",
		Args:  exactArgs(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			list, err := c.ListSchedules(cmd.Context())
			if err != nil {
				return fmt.Errorf("list schedules: %w", err)
			}
			out := struct {
				Items []*apitypes.Schedule `json:"items"`
			}{list}
			return a.show(out, func(w io.Writer) error {
				if len(list) == 0 {
					fmt.Fprintln(a.env.stderr, "No schedules. Create one with: hyperctl schedules create NAME '30 2 * * *' --provider P --vm V")
					return nil
				}
				now := a.env.now()
				fmt.Fprintln(w, "NAME\tSCHEDULE\tTZ\tENABLED\tNEXT RUN\tLAST RUN\tRUNS\tOVERLAP")
				for _, sc := range list {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", sc.Name, sc.Schedule, sc.Timezone, yesNo(sc.Enabled),
						nextRunText(now, sc), lastRunText(now, sc.LastRun), runsText(sc), sc.Overlap)
				}
				return nil
			})
		}),
	}
}

// zoneOf is a schedule's zone for display (UTC if this host lacks it,
// which the embedded zone database makes unlikely).
func zoneOf(name string) *time.Location {
	if loc, err := time.LoadLocation(name); err == nil {
		return loc
	}
	return time.UTC
}

// zoned is a time on the wall clock of a schedule's zone, with the weekday
// that cron expressions often name.
func zoned(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("Mon 2006-01-02 15:04:05 MST")
}

// span is a duration, compactly: 45s, 12m, 5h30m, 3d4h.
func span(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		if m := int(d.Minutes()) % 60; m != 0 {
			return fmt.Sprintf("%dh%dm", int(d.Hours()), m)
		}
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		if h := int(d.Hours()) % 24; h != 0 {
			return fmt.Sprintf("%dd%dh", int(d.Hours())/24, h)
		}
		return fmt.Sprintf("%dd", int(d.Hours())/24)
	}
}

// relative is "in 5h30m" or "3h ago".
func relative(now, t time.Time) string {
	if d := t.Sub(now); d > 0 {
		return "in " + span(d)
	}
	return span(now.Sub(t)) + " ago"
}

// upcoming returns the runs a schedule will make among the due times the
// daemon lists, or why there are none. The daemon keeps listing due times
// past a reached run limit until the schedule disables itself at the next
// one; they are left out here.
func upcoming(now time.Time, sc *apitypes.Schedule) (runs []time.Time, none string) {
	switch {
	case sc.MaxRuns != nil && sc.RunCount >= *sc.MaxRuns:
		return nil, fmt.Sprintf("run limit reached, %d of %d", sc.RunCount, *sc.MaxRuns)
	case sc.EndAt != nil && !sc.EndAt.After(now):
		return nil, "end date reached"
	case !sc.Enabled:
		return nil, "paused"
	}
	runs = sc.NextRuns
	if sc.MaxRuns != nil {
		runs = runs[:min(*sc.MaxRuns-sc.RunCount, len(runs))]
	}
	if len(runs) == 0 {
		if sc.EndAt != nil {
			return nil, "end date reached"
		}
		return nil, "no due time ahead"
	}
	return runs, ""
}

// nextRunText is when a schedule runs next: relative, then on the wall
// clock of its zone.
func nextRunText(now time.Time, sc *apitypes.Schedule) string {
	runs, none := upcoming(now, sc)
	if len(runs) == 0 {
		return none
	}
	return fmt.Sprintf("%s (%s)", relative(now, runs[0]), runs[0].In(zoneOf(sc.Timezone)).Format("Mon 2006-01-02 15:04 MST"))
}

func lastRunText(now time.Time, t *time.Time) string {
	if t == nil {
		return "-"
	}
	return relative(now, *t)
}

func runsText(sc *apitypes.Schedule) string {
	if sc.MaxRuns != nil {
		return fmt.Sprintf("%d/%d", sc.RunCount, *sc.MaxRuns)
	}
	return fmt.Sprint(sc.RunCount)
}

func (a *app) schedulesGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "get NAME",
		Short:             "Show a schedule: timing, policies, job template and next five runs",
		Args:              exactArgs("NAME"),
		ValidArgsFunction: a.completeSchedules,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			sc, err := c.GetSchedule(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("get schedule %s: %w", args[0], err)
			}
			return a.show(sc, func(w io.Writer) error { a.describeSchedule(w, sc); return nil })
		}),
	}
}

// describeSchedule prints a schedule as labelled lines, its job template
// and its next runs on the wall clock of its zone.
func (a *app) describeSchedule(w io.Writer, sc *apitypes.Schedule) {
	now := a.env.now()
	loc := zoneOf(sc.Timezone)
	row := func(k, v string) { fmt.Fprintf(w, "%s:\t%s\n", k, v) }
	at := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return fmt.Sprintf("%s (%s)", zoned(*t, loc), relative(now, *t))
	}
	row("Name", sc.Name)
	row("ID", sc.ID)
	row("Schedule", sc.Schedule)
	row("Time zone", sc.Timezone)
	runs, none := upcoming(now, sc)
	switch {
	case sc.Enabled:
		row("Enabled", "yes")
	case none == "paused":
		row("Enabled", "no (paused; runs missed while paused are not made up)")
	default:
		row("Enabled", "no ("+none+")")
	}
	row("Overlap", sc.Overlap)
	row("Catch-up", sc.CatchUp)
	if sc.EndAt != nil {
		row("End at", at(sc.EndAt))
	}
	row("Runs", runsText(sc))
	row("Last run", at(sc.LastRun))
	if len(runs) > 0 {
		row("Next run", at(&runs[0]))
	} else {
		row("Next run", "- ("+none+")")
	}
	row("Created", fmt.Sprintf("%s by %s", when(now, &sc.CreatedAt), orDash(sc.CreatedBy)))
	row("Updated", when(now, &sc.UpdatedAt))

	fmt.Fprintln(w, "\nJob template:")
	describeTemplate(w, sc.Job)

	if len(runs) > 0 {
		fmt.Fprintf(w, "\nNext runs (%s):\n", sc.Timezone)
		for _, t := range runs {
			fmt.Fprintf(w, "%s\t%s\n", zoned(t, loc), relative(now, t))
		}
	}
}

// describeTemplate prints the options a job template sets; the others
// take the daemon's defaults when a run is submitted.
func describeTemplate(w io.Writer, r apitypes.JobRequest) {
	row := func(k, v string) { fmt.Fprintf(w, "  %s:\t%s\n", k, v) }
	row("Provider", r.Provider)
	row("VM", r.VM)
	if r.Output != "" {
		row("Output", r.Output+" (every run writes here)")
	} else {
		row("Output", "<export directory>/<job id> (one per run)")
	}
	format := r.Format
	if format == "" {
		format = "the daemon's default"
	}
	if r.DiskFormat != "" {
		format += ", " + r.DiskFormat + " disks"
	}
	if r.Compress != nil && *r.Compress {
		format += ", compressed"
		if r.Compression != "" {
			format += " with " + r.Compression
		}
		if r.CompressionLevel != nil {
			format += fmt.Sprintf(" (level %d)", *r.CompressionLevel)
		}
	}
	row("Format", format)
	var opts []string
	if r.Snapshot {
		opts = append(opts, "snapshot")
	}
	if r.PowerOff {
		s := "power-off"
		if r.PowerOffTimeout != "" {
			s += " (guest shutdown wait " + r.PowerOffTimeout + ")"
		}
		opts = append(opts, s)
	}
	if r.CleanupOVF != nil {
		if *r.CleanupOVF {
			opts = append(opts, "cleanup-ovf")
		} else {
			opts = append(opts, "keep-ovf")
		}
	}
	if r.ParallelDownloads > 0 {
		opts = append(opts, fmt.Sprintf("%d parallel downloads", r.ParallelDownloads))
	}
	if r.BandwidthLimit > 0 {
		opts = append(opts, "limit "+humanRate(float64(r.BandwidthLimit)))
	}
	if r.MaxAttempts > 0 {
		opts = append(opts, fmt.Sprintf("%d attempts", r.MaxAttempts))
	}
	if len(opts) > 0 {
		row("Options", strings.Join(opts, ", "))
	}
}

func (a *app) schedulesUpdateCommand() *cobra.Command {
	f := &submitFlags{}
	s := &scheduleFlags{}
	var expr string
	cmd := &cobra.Command{
		Use:   "update NAME [--schedule 'CRON'] [--timezone ZONE] [--overlap …] [--catch-up …] [--end-at TIME] [--max-runs N] [export flags]",
		Short: "Change a schedule's timing, policies or job template",
		Long: `Change a schedule (operator role). Only what is given changes. A new expression
or time zone takes effect from now. Export flags change those options of the
job template and keep the others (the template is fetched and merged);
--snapshot and --power-off replace each other, and an empty value
(--output '') returns an option to the daemon's default.`,
		Example: `  hyperctl schedules update nightly-db01 --schedule '0 3 * * *' --timezone America/New_York
  hyperctl schedules update nightly-db01 --format ova --compress --compression zstd --overlap queue`,
		Args:              exactArgs("NAME"),
		ValidArgsFunction: a.completeSchedules,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			changed := cmd.Flags().Changed
			var p apitypes.SchedulePatch
			var err error
			if p.EndAt, p.MaxRuns, err = s.parsed(cmd); err != nil {
				return err
			}
			if changed("schedule") {
				p.Schedule = &expr
			}
			if changed("timezone") {
				if p.Timezone = &s.timezone; strings.TrimSpace(s.timezone) == "" {
					p.Timezone = new("UTC") // the default, spelled out: the daemon would store ""
				}
			}
			if changed("overlap") {
				p.Overlap = &s.overlap
			}
			if changed("catch-up") {
				p.CatchUp = &s.catchUp
			}
			// Checked before the template is fetched: nothing is sent
			// for a command line that is wrong.
			if _, err := templateRequest(cmd, f); err != nil {
				return err
			}
			templateGiven := false
			cmd.Flags().Visit(func(fl *pflag.Flag) { templateGiven = templateGiven || templateFields[fl.Name] != nil })
			if p == (apitypes.SchedulePatch{}) && !templateGiven {
				return usageErrorf("nothing to change: give --schedule, --timezone, --overlap, --catch-up, --end-at, --max-runs or export flags such as --format")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			id := args[0]
			if templateGiven {
				cur, err := c.GetSchedule(ctx, id)
				if err != nil {
					return fmt.Errorf("update schedule %s: %w", id, err)
				}
				job, _, err := mergeTemplate(cmd, f, cur.Job)
				if err != nil {
					return err
				}
				p.Job, id = &job, cur.ID
			}
			sc, err := c.UpdateSchedule(ctx, id, p)
			if err != nil {
				return fmt.Errorf("update schedule %s: %w", args[0], err)
			}
			return a.show(sc, func(w io.Writer) error {
				fmt.Fprintf(w, "schedule %s updated\n\n", sc.Name)
				a.describeSchedule(w, sc)
				return nil
			})
		}),
	}
	cmd.Flags().StringVar(&expr, "schedule", "", "new expression: 5 fields, a descriptor such as @daily, or '@every 2h'")
	bindFields(cmd, "", map[string]string{"schedule": "schedule"})
	a.addTemplateFlags(cmd, f)
	s.add(cmd, false)
	return cmd
}

func (a *app) schedulesEnableCommand(enable bool) *cobra.Command {
	use, short := "enable NAME", "Resume a schedule from its next due time (runs missed while paused are not made up)"
	if !enable {
		use, short = "disable NAME", "Pause a schedule"
	}
	return &cobra.Command{
		Use:               use,
		Short:             short,
		Args:              exactArgs("NAME"),
		ValidArgsFunction: a.completeSchedules,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var sc *apitypes.Schedule
			if enable {
				sc, err = c.EnableSchedule(cmd.Context(), args[0])
			} else {
				sc, err = c.DisableSchedule(cmd.Context(), args[0])
			}
			if err != nil {
				return fmt.Errorf("%s schedule %s: %w", strings.Fields(use)[0], args[0], err)
			}
			return a.show(sc, func(w io.Writer) error {
				if enable {
					fmt.Fprintf(w, "schedule %s enabled; next run: %s\n", sc.Name, nextRunText(a.env.now(), sc))
				} else {
					fmt.Fprintf(w, "schedule %s paused; 'hyperctl schedules enable %s' resumes it\n", sc.Name, sc.Name)
				}
				return nil
			})
		}),
	}
}

func (a *app) schedulesDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "delete NAME",
		Aliases:           []string{"rm", "remove"},
		Short:             "Delete a schedule and its history (its jobs and files are kept); needs the admin role",
		Args:              exactArgs("NAME"),
		ValidArgsFunction: a.completeSchedules,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.DeleteSchedule(cmd.Context(), args[0]); err != nil {
				return fmt.Errorf("delete schedule %s: %w", args[0], err)
			}
			if a.format == "table" {
				fmt.Fprintf(a.env.stdout, "schedule %s deleted\n", args[0])
			}
			return nil
		}),
	}
}

func (a *app) schedulesRunCommand() *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "run NAME [--wait]",
		Short: "Run a schedule's export now (recorded as a manual run)",
		Long: `Submit the schedule's job now (operator role), whatever its overlap policy and
even while it is paused; the run is recorded in its history as manual and
counts towards --max-runs. With --wait, follow the job as 'hyperctl jobs
watch' does: exit 0 when it succeeded, 1 when it failed or was cancelled.`,
		Args:              exactArgs("NAME"),
		ValidArgsFunction: a.completeSchedules,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			x, err := c.RunSchedule(ctx, args[0])
			if err != nil {
				return fmt.Errorf("run schedule %s: %w", args[0], err)
			}
			if wait {
				fmt.Fprintf(a.env.stderr, "schedule %s: execution %d submitted job %s\n", args[0], x.ID, x.JobID)
				return a.watch(ctx, c, x.JobID)
			}
			return a.show(x, func(w io.Writer) error {
				fmt.Fprintf(w, "schedule %s: execution %d submitted job %s\n", args[0], x.ID, x.JobID)
				fmt.Fprintf(w, "follow it with: hyperctl jobs watch %s\n", x.JobID)
				return nil
			})
		}),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "watch the job with a progress bar until it ends; exit non-zero unless it succeeds")
	return cmd
}

func (a *app) schedulesHistoryCommand() *cobra.Command {
	var (
		limit int
		all   bool
	)
	cmd := &cobra.Command{
		Use:   "history NAME [--limit N] [--all]",
		Short: "List a schedule's runs, newest first: kind, status, job, duration and lag",
		Long: `List a schedule's executions, newest first. KIND is scheduled, catch_up (making
up for due times missed while no daemon ran), manual ('run') or queued (a run
that waited for the previous one, overlap queue). STATUS is submitted while
the job runs, then its final state (succeeded, failed, cancelled); skipped
(overlap skip) and not_submitted (the template could not be submitted, see
DETAIL) runs have no job. LAG is how late a run started after its due time.
Times are on the wall clock of the schedule's zone.`,
		Args:              exactArgs("NAME"),
		ValidArgsFunction: a.completeSchedules,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if limit < 0 || limit > 1000 {
				return usageErrorf("--limit must be between 1 and 1000")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			// The schedule gives the zone the times are shown in.
			sc, err := c.GetSchedule(ctx, args[0])
			if err != nil {
				return fmt.Errorf("history of schedule %s: %w", args[0], err)
			}
			var list *apitypes.ExecutionList
			if all {
				list = &apitypes.ExecutionList{Items: []*apitypes.Execution{}}
				if limit == 0 {
					limit = 500
				}
				for x, err := range c.AllScheduleHistory(ctx, sc.ID, limit) {
					if err != nil {
						return fmt.Errorf("history of schedule %s: %w", args[0], err)
					}
					list.Items = append(list.Items, x)
				}
			} else if list, err = c.ScheduleHistory(ctx, sc.ID, "", limit); err != nil {
				return fmt.Errorf("history of schedule %s: %w", args[0], err)
			}
			return a.show(list, func(w io.Writer) error {
				if len(list.Items) == 0 {
					fmt.Fprintf(a.env.stderr, "Schedule %s has not run yet. 'hyperctl schedules run %s' runs it now.\n", sc.Name, sc.Name)
					return nil
				}
				loc := zoneOf(sc.Timezone)
				const layout = "2006-01-02 15:04:05 MST"
				fmt.Fprintln(w, "EXECUTED\tDUE\tKIND\tSTATUS\tJOB\tDURATION\tLAG\tDETAIL")
				for _, x := range list.Items {
					due := "-"
					if x.DueAt != nil {
						due = x.DueAt.In(loc).Format(layout)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.ExecutedAt.In(loc).Format(layout), due, x.Kind, x.Status,
						orDash(x.JobID), durationText(x), lagText(x), orDash(short(x.Detail, 60)))
				}
				if list.NextCursor != "" {
					fmt.Fprintln(a.env.stderr, "More runs; use --all, or a larger --limit.")
				}
				return nil
			})
		}),
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many runs (server default 100, max 1000); with --all, the page size")
	cmd.Flags().BoolVar(&all, "all", false, "fetch every run, following the server's pages")
	return cmd
}

func durationText(x *apitypes.Execution) string {
	if x.DurationSeconds == nil {
		return "-"
	}
	return humanDuration(time.Duration(*x.DurationSeconds * float64(time.Second)))
}

// lagText is how late a run started; manual runs and runs without a job
// have none.
func lagText(x *apitypes.Execution) string {
	if x.Kind == apitypes.ExecutionManual || x.JobID == "" {
		return "-"
	}
	return humanDuration(time.Duration(x.LagSeconds * float64(time.Second)))
}

func (a *app) schedulesNextCommand() *cobra.Command {
	var (
		zone string
		n    int
	)
	cmd := &cobra.Command{
		Use:   "next ('CRON' | NAME) [--timezone ZONE] [-n 5]",
		Short: "Show when an expression would run (a dry run before saving), or when a schedule runs next",
		Long: `Show the next due times of an expression as the daemon computes them, without
saving anything: try an expression, its time zone and the daylight-saving
rule before creating a schedule. Given the name of a saved schedule, show its
next runs instead (the daemon reports up to five). Times are on the wall
clock of the zone, with how far ahead they are.`,
		Example: `  hyperctl schedules next '0 3 * * *' --timezone America/New_York
  hyperctl schedules next '30 2 * * 0' --timezone Europe/Berlin -n 10
  hyperctl schedules next nightly-db01`,
		Args:              exprArgs("CRON|NAME"),
		ValidArgsFunction: a.completeSchedules,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if n < 1 || n > 100 {
				return usageErrorf("-n must be between 1 and 100")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			arg := strings.TrimSpace(args[0])
			// Names have no spaces and do not start with '@'; expressions
			// have either.
			if !strings.ContainsAny(arg, " \t") && !strings.HasPrefix(arg, "@") {
				sc, err := c.GetSchedule(ctx, arg)
				switch {
				case err == nil:
					if cmd.Flags().Changed("timezone") {
						return usageErrorf("--timezone applies to an expression; schedule %s runs in %s", sc.Name, sc.Timezone)
					}
					return a.showScheduleNext(sc, n)
				case !client.IsProblem(err, "schedule-not-found"):
					return fmt.Errorf("schedule %s: %w", arg, err)
				}
			}
			prev, err := c.PreviewSchedule(ctx, arg, zone, n)
			if err != nil {
				if client.IsProblem(err, "invalid-schedule") && !strings.ContainsAny(arg, " \t") && !strings.HasPrefix(arg, "@") {
					return fmt.Errorf("%q is neither a schedule's name nor a valid expression: %w", arg, err)
				}
				return fmt.Errorf("preview %q: %w", arg, err)
			}
			return a.showNext(prev)
		}),
	}
	cmd.Flags().StringVar(&zone, "timezone", "", "IANA time zone the expression is read in (default UTC)")
	cmd.Flags().IntVarP(&n, "count", "n", 5, "how many due times, 1-100")
	bindFields(cmd, "", map[string]string{"timezone": "timezone", "count": "count"})
	bindArg(cmd, "schedule", "CRON")
	_ = cmd.RegisterFlagCompletionFunc("timezone", completeZones)
	return cmd
}

// showScheduleNext shows a saved schedule's next runs in the shape of a
// preview.
func (a *app) showScheduleNext(sc *apitypes.Schedule, n int) error {
	runs, none := upcoming(a.env.now(), sc)
	switch {
	case len(runs) == 0 && none == "paused":
		fmt.Fprintf(a.env.stderr, "Schedule %s is paused: it does not run until 'hyperctl schedules enable %s'.\n", sc.Name, sc.Name)
	case len(runs) == 0:
		fmt.Fprintf(a.env.stderr, "Schedule %s will not run again: %s.\n", sc.Name, none)
	case n > len(runs) && len(runs) == len(sc.NextRuns) && len(runs) == 5:
		fmt.Fprintf(a.env.stderr, "The daemon reports the next 5 runs of a saved schedule; for more, preview its expression: hyperctl schedules next '%s' --timezone %s -n %d\n",
			sc.Schedule, sc.Timezone, n)
	}
	if n < len(runs) {
		runs = runs[:n]
	}
	if runs == nil {
		runs = []time.Time{}
	}
	return a.showNext(&client.SchedulePreview{Schedule: sc.Schedule, Timezone: sc.Timezone, Next: runs})
}

func (a *app) showNext(p *client.SchedulePreview) error {
	return a.show(p, func(w io.Writer) error {
		if len(p.Next) == 0 {
			return nil
		}
		now := a.env.now()
		loc := zoneOf(p.Timezone)
		fmt.Fprintf(w, "Next runs of '%s' (%s):\n", p.Schedule, p.Timezone)
		for _, t := range p.Next {
			fmt.Fprintf(w, "%s\t%s\n", zoned(t, loc), relative(now, t))
		}
		return nil
	})
}

// completeSchedules offers the schedules' names.
func (a *app) completeSchedules(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := a.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	list, err := c.ListSchedules(cmd.Context())
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]string, 0, len(list))
	for _, sc := range list {
		out = append(out, sc.Name+"\t"+sc.Schedule+" ("+sc.Timezone+")")
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
