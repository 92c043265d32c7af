package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/client"
)

func (a *app) webhooksCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "webhooks",
		Aliases: []string{"webhook"},
		Short:   "Manage webhook endpoints and follow their deliveries",
		Long: `Webhook endpoints receive the daemon's job and schedule events as signed HTTP
POSTs (Standard Webhooks: webhook-id, webhook-timestamp and webhook-signature
headers, HMAC-SHA256 with the endpoint's whsec_ secret). Deliveries are
durable and retried with backoff; their history, attempt by attempt, is kept.

Event patterns: an event type (job.completed), a group (job.*, schedule.*) or
*; job.progress is sent only to endpoints that list it by name.

Adding, changing, removing, rotating and redelivering need the admin role;
sending a test needs operator; the rest viewer.`,
		RunE: groupRunE,
	}
	cmd.AddCommand(a.webhooksAddCommand(), a.webhooksListCommand(), a.webhooksGetCommand(), a.webhooksRemoveCommand(),
		a.webhooksEnableCommand(true), a.webhooksEnableCommand(false), a.webhooksRotateCommand(), a.webhooksTestCommand(),
		a.webhooksDeliveriesCommand(), a.webhooksDeliveryCommand(), a.webhooksRedeliverCommand())
	return cmd
}

// sensitiveHeader reports whether a header's value is likely a credential.
func sensitiveHeader(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"authorization", "token", "secret", "key", "password", "auth", "cookie", "signature"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// parseHeader reads "Name=value" or "Name: value".
func parseHeader(s string) (name, value string, err error) {
	i := strings.IndexAny(s, "=:")
	if i <= 0 {
		return "", "", fmt.Errorf("%q: want Name=value (or Name: value)", s)
	}
	name, value = strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:])
	if name == "" || strings.ContainsAny(name, " \t") {
		return "", "", fmt.Errorf("%q: %q is not a header name", s, name)
	}
	return name, value, nil
}

// readHeaderFile reads one header per line ("Name: value" or
// "Name=value"); blank lines and lines starting with # are skipped.
func readHeaderFile(path string, into map[string]string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, err := parseHeader(line)
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		into[k] = v
	}
	return sc.Err()
}

// readSecretFile reads a signing secret: the file's content, trimmed.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

func (a *app) webhooksAddCommand() *cobra.Command {
	var (
		events, headers         []string
		headerFile, description string
		secret, secretFile      string
		timeout                 time.Duration
		maxRetries              int
	)
	cmd := &cobra.Command{
		Use:   "add URL --events PATTERN [--events PATTERN…] [flags]",
		Short: "Add a webhook endpoint and print its signing secret (shown this once)",
		Long: `Add a webhook endpoint (admin role). The endpoint's signing secret — generated
unless --secret-file (or --secret) gives one — is printed on stdout, alone, so
that it can be captured; store it now: the daemon never shows it again (only
its first characters, as SECRET PREFIX). The other messages go to stderr.
With -o json|yaml the whole answer (endpoint and secret) is printed instead.

Header values and a secret given on the command line are visible to other
users in the process list: put credentials in --header-file and --secret-file.
This command's --timeout is the per-attempt delivery timeout, not the API
request timeout.`,
		Example: `  hyperctl webhooks add https://hooks.example.com/hypersdk --events 'job.*'
  SECRET=$(hyperctl webhooks add https://ci.example.com/hook --events job.completed --events job.failed \
      --header-file ci-headers.txt --max-retries 3 --description "CI pipeline")`,
		Args: exactArgs("URL"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			changed := cmd.Flags().Changed
			if len(events) == 0 {
				return usageErrorf("--events is required: the event types to send, e.g. --events 'job.*' or --events job.completed --events job.failed")
			}
			spec := apitypes.EndpointSpec{URL: args[0], Description: description, Events: events}
			if len(headers) > 0 || headerFile != "" {
				spec.Headers = map[string]string{}
			}
			if headerFile != "" {
				if err := readHeaderFile(headerFile, spec.Headers); err != nil {
					return usageErrorf("--header-file: %v", err)
				}
			}
			for _, h := range headers {
				k, v, err := parseHeader(h)
				if err != nil {
					return usageErrorf("--header %v", err)
				}
				if sensitiveHeader(k) {
					fmt.Fprintf(a.env.stderr, "hyperctl: warning: the value of header %s given with --header is visible to other users in the process list; prefer --header-file\n", k)
				}
				spec.Headers[k] = v
			}
			switch {
			case changed("secret") && changed("secret-file"):
				return usageErrorf("--secret and --secret-file exclude each other")
			case changed("secret-file"):
				s, err := readSecretFile(secretFile)
				if err != nil {
					return usageErrorf("--secret-file: %v", err)
				}
				spec.Secret = s
			case changed("secret"):
				fmt.Fprintln(a.env.stderr, "hyperctl: warning: a secret given with --secret is visible to other users in the process list; prefer --secret-file")
				spec.Secret = strings.TrimSpace(secret)
			}
			if changed("timeout") {
				spec.Timeout = timeout.String()
			}
			if changed("max-retries") {
				spec.MaxRetries = new(maxRetries)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			created, err := c.CreateWebhook(cmd.Context(), spec)
			if err != nil {
				return fmt.Errorf("add webhook %s: %w", args[0], err)
			}
			ep := created.Endpoint
			if a.format != "table" {
				return a.show(created, nil)
			}
			fmt.Fprintf(a.env.stderr, "Added webhook endpoint %s: %s (events %s).\n", ep.ID, ep.URL, strings.Join(ep.Events, ", "))
			return a.printSecret(created.Secret, "Signing secret")
		}),
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&events, "events", nil, "event type or wildcard to send (job.*, job.completed, schedule.*, *); repeat or comma-separate")
	fl.StringArrayVar(&headers, "header", nil, "extra request header Name=value, e.g. 'X-Team=infra' (repeatable; values are visible in the process list)")
	fl.StringVar(&headerFile, "header-file", "", "file of extra headers, one 'Name: value' per line (for credentials such as Authorization)")
	fl.StringVar(&description, "description", "", "what the endpoint is for")
	fl.DurationVar(&timeout, "timeout", 0, "per-attempt delivery timeout, 100ms to 5m (default 10s)")
	fl.IntVar(&maxRetries, "max-retries", 0, "retries after the first attempt, 0-50 (default: the Standard Webhooks schedule, 7 retries over about 27 hours)")
	fl.StringVar(&secret, "secret", "", "signing secret whsec_… (visible in the process list: prefer --secret-file)")
	fl.StringVar(&secretFile, "secret-file", "", "file holding the signing secret whsec_… (default: the daemon generates one)")
	bindFields(cmd, "", map[string]string{"events": "events", "header": "headers", "header-file": "headers", "description": "description",
		"timeout": "timeout", "max-retries": "max_retries", "secret": "secret", "secret-file": "secret"})
	bindArg(cmd, "url", "URL")
	_ = cmd.RegisterFlagCompletionFunc("events", cobra.FixedCompletions(append([]string{"job.*", "schedule.*", "*"}, apitypes.EventTypes()...), cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// printSecret prints a secret the daemon shows only once: the warning on
// stderr, the secret alone on stdout.
func (a *app) printSecret(secret, what string) error {
	fmt.Fprintf(a.env.stderr, "%s below: store it now, it will not be shown again.\n", what)
	_, err := fmt.Fprintln(a.env.stdout, secret)
	return err
}

func (a *app) webhooksListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List webhook endpoints (secrets only by their prefix)",
		Args:  exactArgs(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			eps, err := c.ListWebhooks(cmd.Context())
			if err != nil {
				return fmt.Errorf("list webhooks: %w", err)
			}
			out := struct {
				Items []*apitypes.Endpoint `json:"items"`
			}{eps}
			return a.show(out, func(w io.Writer) error {
				if len(eps) == 0 {
					fmt.Fprintln(a.env.stderr, "No webhook endpoints. Add one with: hyperctl webhooks add URL --events 'job.*'")
					return nil
				}
				fmt.Fprintln(w, "ID\tURL\tEVENTS\tENABLED\tPENDING\tSOURCE\tSECRET PREFIX")
				for _, ep := range eps {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", ep.ID, ep.URL, strings.Join(ep.Events, ","), yesNo(ep.Enabled),
						ep.Pending, ep.Source, ep.SecretPrefix)
				}
				return nil
			})
		}),
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (a *app) webhooksGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "get ID",
		Short:             "Show a webhook endpoint",
		Args:              exactArgs("ID"),
		ValidArgsFunction: a.completeWebhooks,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ep, err := c.GetWebhook(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("get webhook %s: %w", args[0], err)
			}
			return a.show(ep, func(w io.Writer) error { a.describeEndpoint(w, ep); return nil })
		}),
	}
}

func (a *app) describeEndpoint(w io.Writer, ep *apitypes.Endpoint) {
	now := a.env.now()
	row := func(k, v string) { fmt.Fprintf(w, "%s:\t%s\n", k, v) }
	row("ID", ep.ID)
	row("URL", ep.URL)
	if ep.Description != "" {
		row("Description", ep.Description)
	}
	row("Events", strings.Join(ep.Events, ", "))
	enabled := yesNo(ep.Enabled)
	if ep.DisabledReason != "" {
		enabled += " (" + ep.DisabledReason + ")"
	}
	row("Enabled", enabled)
	row("Source", ep.Source)
	row("Secret", ep.SecretPrefix)
	if ep.RotatingUntil != nil {
		row("Rotating until", whenNext(now, ep.RotatingUntil)+": the previous secret signs too")
	}
	if len(ep.HeaderNames) > 0 {
		row("Headers", strings.Join(ep.HeaderNames, ", ")+" (values not shown)")
	}
	row("Timeout", humanDuration(time.Duration(ep.TimeoutSeconds*float64(time.Second))))
	row("Max retries", fmt.Sprint(ep.MaxRetries))
	row("Pending", fmt.Sprint(ep.Pending))
	row("Created", when(now, &ep.CreatedAt))
	row("Updated", when(now, &ep.UpdatedAt))
}

func (a *app) webhooksRemoveCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "remove ID",
		Aliases:           []string{"rm", "delete"},
		Short:             "Remove a webhook endpoint and its delivery history; needs the admin role",
		Args:              exactArgs("ID"),
		ValidArgsFunction: a.completeWebhooks,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.DeleteWebhook(cmd.Context(), args[0]); err != nil {
				return fmt.Errorf("remove webhook %s: %w", args[0], err)
			}
			if a.format == "table" {
				fmt.Fprintf(a.env.stdout, "webhook endpoint %s removed\n", args[0])
			}
			return nil
		}),
	}
}

func (a *app) webhooksEnableCommand(enable bool) *cobra.Command {
	use, short := "enable ID", "Enable a webhook endpoint: its pending deliveries flow again"
	verb := "enabled"
	if !enable {
		use, short = "disable ID", "Disable a webhook endpoint: new events are not recorded for it, pending deliveries wait"
		verb = "disabled"
	}
	return &cobra.Command{
		Use:               use,
		Short:             short + "; needs the admin role",
		Args:              exactArgs("ID"),
		ValidArgsFunction: a.completeWebhooks,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ep, err := c.UpdateWebhook(cmd.Context(), args[0], apitypes.EndpointPatch{Enabled: new(enable)})
			if err != nil {
				return fmt.Errorf("%s webhook %s: %w", strings.TrimSuffix(verb, "d"), args[0], err)
			}
			return a.show(ep, func(w io.Writer) error {
				fmt.Fprintf(w, "webhook endpoint %s %s", ep.ID, verb)
				if enable && ep.Pending > 0 {
					fmt.Fprintf(w, " (%d pending deliveries)", ep.Pending)
				}
				fmt.Fprintln(w)
				return nil
			})
		}),
	}
}

func (a *app) webhooksRotateCommand() *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "rotate-secret ID [--grace 24h]",
		Short: "Give an endpoint a new signing secret (printed this once); needs the admin role",
		Long: `Replace an endpoint's signing secret. The new secret is printed on stdout, alone;
store it now, it will not be shown again. For --grace the previous secret keeps
signing too (every delivery carries both signatures), so receivers can switch
over; --grace 0s retires it at once.`,
		Args:              exactArgs("ID"),
		ValidArgsFunction: a.completeWebhooks,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if grace < 0 {
				return usageErrorf("--grace must not be negative")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			rotated, err := c.RotateWebhookSecret(cmd.Context(), args[0], grace)
			if err != nil {
				return fmt.Errorf("rotate secret of webhook %s: %w", args[0], err)
			}
			if a.format != "table" {
				return a.show(rotated, nil)
			}
			ep := rotated.Endpoint
			if ep.RotatingUntil != nil {
				fmt.Fprintf(a.env.stderr, "Rotated the signing secret of %s; the previous secret keeps signing too until %s.\n",
					ep.ID, ep.RotatingUntil.Local().Format("2006-01-02 15:04:05 MST"))
			} else {
				fmt.Fprintf(a.env.stderr, "Rotated the signing secret of %s; the previous secret no longer signs.\n", ep.ID)
			}
			return a.printSecret(rotated.Secret, "New signing secret")
		}),
	}
	cmd.Flags().DurationVar(&grace, "grace", 24*time.Hour, "how long the previous secret keeps signing too (at most 720h; 0s retires it now)")
	bindFields(cmd, "", map[string]string{"grace": "grace"})
	return cmd
}

func (a *app) webhooksTestCommand() *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "test ID [--wait]",
		Short: "Send a webhook.test event to an endpoint; needs the operator role",
		Long: `Queue a webhook.test event for one endpoint (also a disabled one, to check a
receiver before enabling it again) and print its delivery. With --wait,
follow the delivery until it is delivered (exit 0) or has failed for good
(exit 1, printing the receiver's status or the error). A failing attempt is
retried on the endpoint's schedule and --wait follows the retries, printing
each attempt; interrupting stops the waiting, not the delivery.`,
		Args:              exactArgs("ID"),
		ValidArgsFunction: a.completeWebhooks,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			ep, err := c.GetWebhook(ctx, args[0])
			if err != nil {
				return fmt.Errorf("test webhook %s: %w", args[0], err)
			}
			if !ep.Enabled {
				// Test deliveries go out anyway: that is how to check a
				// receiver before enabling it again.
				fmt.Fprintf(a.env.stderr, "note: endpoint %s is disabled (%s); the test is sent anyway, events are not\n", ep.ID, orDash(ep.DisabledReason))
			}
			d, err := c.TestWebhook(ctx, args[0])
			if err != nil {
				return fmt.Errorf("test webhook %s: %w", args[0], err)
			}
			if wait {
				fmt.Fprintf(a.env.stderr, "test delivery %s queued to %s (webhook-id %s)\n", d.ID, ep.URL, d.EventID)
				return a.waitDelivery(ctx, c, d, 0)
			}
			return a.show(d, func(w io.Writer) error {
				fmt.Fprintf(w, "test delivery %s queued to %s (webhook-id %s)\n", d.ID, ep.URL, d.EventID)
				fmt.Fprintf(w, "follow it with: hyperctl webhooks delivery %s\n", d.ID)
				return nil
			})
		}),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the delivery succeeded or failed for good; exit 1 if it failed")
	return cmd
}

// deliveryFailedError reports a waited delivery that failed for good.
type deliveryFailedError struct{ d *apitypes.Delivery }

func (e *deliveryFailedError) Error() string {
	d := e.d
	return fmt.Sprintf("delivery %s (%s) failed after %d attempt(s): %s", d.ID, d.EventType, d.Attempts, lastOutcome(d))
}

// lastOutcome is the last attempt's status and error, e.g. "HTTP 500:
// upstream down" or "dial tcp …: connection refused".
func lastOutcome(d *apitypes.Delivery) string {
	status, errText := d.LastStatus, d.LastError
	if n := len(d.History); n > 0 {
		status, errText = d.History[n-1].Status, d.History[n-1].Error
	}
	return attemptOutcome(status, errText)
}

func attemptOutcome(status int, errText string) string {
	if errText == fmt.Sprintf("HTTP %d", status) {
		errText = "" // what the daemon records when the status says it all
	}
	switch {
	case status != 0 && errText != "":
		return fmt.Sprintf("HTTP %d: %s", status, errText)
	case status != 0:
		return fmt.Sprintf("HTTP %d", status)
	case errText != "":
		return errText
	}
	return "-"
}

// waitDelivery follows d until it is no longer pending, printing each new
// attempt on stderr, then the outcome (the delivery itself with -o
// json|yaml). A failed delivery is a *deliveryFailedError.
func (a *app) waitDelivery(ctx context.Context, c *client.Client, d *apitypes.Delivery, earlier int) error {
	// Only attempts of this round are printed: the first earlier entries of
	// the history belong to previous rounds (counted before a redelivery,
	// since the attempt counter and the history are read separately).
	seen := earlier
	final, err := c.WatchDelivery(ctx, d.ID, a.env.pollInterval, func(cur *apitypes.Delivery) {
		for ; seen < len(cur.History); seen++ {
			at := cur.History[seen]
			line := fmt.Sprintf("attempt %d: %s (%s)", at.Attempt, attemptOutcome(at.Status, at.Error), latency(at.LatencyMS))
			if at.Response != "" && (at.Status < 200 || at.Status > 299) {
				line += ", response: " + short(at.Response, 80)
			}
			if seen == len(cur.History)-1 && cur.State == apitypes.DeliveryPending && cur.NextAttemptAt != nil {
				line += "; next attempt in " + untilText(cur.NextAttemptAt.Sub(a.env.now()))
			}
			fmt.Fprintln(a.env.stderr, line)
		}
	})
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return fmt.Errorf("stopped waiting for delivery %s, which goes on: see it with 'hyperctl webhooks delivery %s'", d.ID, d.ID)
		}
		return fmt.Errorf("wait for delivery %s: %w", d.ID, err)
	}
	if err := a.show(final, func(w io.Writer) error {
		if final.State != apitypes.DeliveryDelivered {
			return nil // the error says it
		}
		ms, attempt := final.LastLatencyMS, final.Attempts
		if n := len(final.History); n > 0 {
			ms, attempt = final.History[n-1].LatencyMS, final.History[n-1].Attempt
		}
		fmt.Fprintf(w, "delivery %s delivered: %s in %s (attempt %d)\n", final.ID, lastOutcome(final), latency(ms), attempt)
		return nil
	}); err != nil {
		return err
	}
	if final.State != apitypes.DeliveryDelivered {
		return &deliveryFailedError{d: final}
	}
	return nil
}

func (a *app) webhooksDeliveriesCommand() *cobra.Command {
	var (
		state, event string
		limit        int
		all          bool
	)
	cmd := &cobra.Command{
		Use:   "deliveries (ID | --event WEBHOOK_ID) [--state pending|delivered|failed] [--limit N] [--all]",
		Short: "List the deliveries of an endpoint, or of one event, newest first",
		Example: `  hyperctl webhooks deliveries wh_0197… --state failed --all
  hyperctl webhooks deliveries --event msg_0197…     # one event (the webhook-id header) to every endpoint`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case event == "" && len(args) != 1:
				return usageErrorf("%s takes an endpoint ID, or --event WEBHOOK_ID", cmd.CommandPath())
			case event != "" && len(args) != 0:
				return usageErrorf("give an endpoint ID or --event, not both")
			case event != "" && (state != "" || limit != 0 || all):
				return usageErrorf("--state, --limit and --all apply to an endpoint's deliveries, not to --event")
			case limit < 0 || limit > 1000:
				return usageErrorf("--limit must be between 1 and 1000")
			}
			return nil
		},
		ValidArgsFunction: a.completeWebhooks,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var list *apitypes.DeliveryList
			switch {
			case event != "":
				if list, err = c.EventDeliveries(ctx, event); err != nil {
					return fmt.Errorf("deliveries of event %s: %w", event, err)
				}
			case all:
				list = &apitypes.DeliveryList{Items: []*apitypes.Delivery{}}
				if limit == 0 {
					limit = 500
				}
				for d, err := range c.AllWebhookDeliveries(ctx, args[0], state, limit) {
					if err != nil {
						return fmt.Errorf("deliveries of webhook %s: %w", args[0], err)
					}
					list.Items = append(list.Items, d)
				}
			default:
				if list, err = c.WebhookDeliveries(ctx, args[0], state, "", limit); err != nil {
					return fmt.Errorf("deliveries of webhook %s: %w", args[0], err)
				}
			}
			return a.show(list, func(w io.Writer) error {
				if len(list.Items) == 0 {
					fmt.Fprintln(a.env.stderr, "No deliveries found.")
					return nil
				}
				now := a.env.now()
				head := "ID\tWEBHOOK ID\tEVENT\tSTATE\tATTEMPTS\tLAST STATUS\tLATENCY\tAGE\tNOTE"
				if event != "" {
					head = "ID\tENDPOINT\tEVENT\tSTATE\tATTEMPTS\tLAST STATUS\tLATENCY\tAGE\tNOTE"
				}
				fmt.Fprintln(w, head)
				for _, d := range list.Items {
					second := d.EventID
					if event != "" {
						second = d.EndpointID
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", d.ID, second, d.EventType, d.State, d.Attempts,
						statusText(d.LastStatus), latencyText(d), age(now, d.CreatedAt), deliveryNote(d, now))
				}
				if list.NextCursor != "" {
					fmt.Fprintln(a.env.stderr, "More deliveries match; use --all, or a larger --limit.")
				}
				return nil
			})
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&state, "state", "", "only deliveries in this state: pending, delivered or failed")
	fl.StringVar(&event, "event", "", "list the deliveries of this event (its webhook-id, msg_…) to every endpoint instead")
	fl.IntVar(&limit, "limit", 0, "at most this many deliveries (server default 100, max 1000); with --all, the page size")
	fl.BoolVar(&all, "all", false, "fetch every matching delivery, following the server's pages")
	_ = cmd.RegisterFlagCompletionFunc("state", cobra.FixedCompletions(
		[]string{apitypes.DeliveryPending, apitypes.DeliveryDelivered, apitypes.DeliveryFailed}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// latency renders a latency in milliseconds.
func latency(ms int64) string {
	if ms <= 0 {
		return "<1ms"
	}
	return humanDuration(time.Duration(ms) * time.Millisecond)
}

// whenNext is a local timestamp with how far ahead (or ago) it is.
func whenNext(now time.Time, t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	if d := t.Sub(now); d > 0 {
		return fmt.Sprintf("%s (in %s)", t.Local().Format("2006-01-02 15:04:05 MST"), untilText(d))
	}
	return when(now, t)
}

// untilText is a wait, compactly.
func untilText(d time.Duration) string {
	if d < time.Second {
		return "<1s"
	}
	return humanDuration(d.Round(time.Second))
}

func statusText(status int) string {
	if status == 0 {
		return "-"
	}
	return fmt.Sprint(status)
}

func latencyText(d *apitypes.Delivery) string {
	if d.Attempts == 0 && d.LastStatus == 0 && d.LastError == "" {
		return "-"
	}
	return latency(d.LastLatencyMS)
}

// deliveryNote says what comes next for a pending delivery, or what went
// wrong with a failed one.
func deliveryNote(d *apitypes.Delivery, now time.Time) string {
	switch d.State {
	case apitypes.DeliveryPending:
		if d.NextAttemptAt == nil {
			return "-"
		}
		if wait := d.NextAttemptAt.Sub(now); wait > 0 {
			return "next attempt in " + untilText(wait)
		}
		return "due now"
	case apitypes.DeliveryFailed:
		return short(attemptOutcome(d.LastStatus, d.LastError), 60)
	}
	return "-"
}

func (a *app) webhooksDeliveryCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delivery DELIVERY_ID",
		Short: "Show a delivery with every attempt: time, status, latency, error",
		Args:  exactArgs("DELIVERY_ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			d, err := c.GetDelivery(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("get delivery %s: %w", args[0], err)
			}
			return a.show(d, func(w io.Writer) error { a.describeDelivery(w, d); return nil })
		}),
	}
}

func (a *app) describeDelivery(w io.Writer, d *apitypes.Delivery) {
	now := a.env.now()
	row := func(k, v string) { fmt.Fprintf(w, "%s:\t%s\n", k, v) }
	row("ID", d.ID)
	row("Webhook ID", d.EventID)
	row("Event", d.EventType)
	row("Endpoint", d.EndpointID)
	row("State", d.State)
	row("Attempts", fmt.Sprint(len(d.History)))
	row("Created", when(now, &d.CreatedAt))
	if d.DeliveredAt != nil {
		row("Delivered", when(now, d.DeliveredAt))
	}
	if d.NextAttemptAt != nil {
		row("Next attempt", whenNext(now, d.NextAttemptAt))
	}
	if d.State == apitypes.DeliveryFailed {
		row("Last error", lastOutcome(d))
	}
	if len(d.History) == 0 {
		fmt.Fprintln(w, "\nNo attempts yet.")
		return
	}
	fmt.Fprintln(w, "\nATTEMPT\tTIME\tSTATUS\tLATENCY\tERROR\tRESPONSE")
	for _, at := range d.History {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", at.Attempt, at.At.Local().Format("2006-01-02 15:04:05.000"), statusText(at.Status),
			latency(at.LatencyMS), orDash(oneLine(at.Error)), orDash(short(at.Response, 40)))
	}
}

// oneLine keeps a table row on one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// short is s on one line, cut to n runes.
func short(s string, n int) string {
	r := []rune(oneLine(s))
	if len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return string(r)
}

func (a *app) webhooksRedeliverCommand() *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "redeliver DELIVERY_ID [--wait]",
		Short: "Send a delivery again, with a fresh retry budget and the same webhook-id; needs the admin role",
		Long: `Send a delivery again now, with a fresh retry budget. It keeps its webhook-id,
so receivers that saw it already can tell. With --wait, follow it as 'test
--wait' does: exit 0 once delivered, 1 if it failed for good.`,
		Args: exactArgs("DELIVERY_ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			earlier := 0
			if wait {
				before, err := c.GetDelivery(ctx, args[0])
				if err != nil {
					return fmt.Errorf("redeliver %s: %w", args[0], err)
				}
				earlier = len(before.History)
			}
			d, err := c.Redeliver(ctx, args[0])
			if err != nil {
				return fmt.Errorf("redeliver %s: %w", args[0], err)
			}
			if wait {
				fmt.Fprintf(a.env.stderr, "delivery %s queued again to %s (webhook-id %s)\n", d.ID, d.EndpointID, d.EventID)
				return a.waitDelivery(ctx, c, d, earlier)
			}
			return a.show(d, func(w io.Writer) error {
				fmt.Fprintf(w, "delivery %s queued again to %s (webhook-id %s)\n", d.ID, d.EndpointID, d.EventID)
				fmt.Fprintf(w, "follow it with: hyperctl webhooks delivery %s\n", d.ID)
				return nil
			})
		}),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the delivery succeeded or failed for good; exit 1 if it failed")
	return cmd
}

// completeWebhooks offers the endpoints' IDs.
func (a *app) completeWebhooks(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := a.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	eps, err := c.ListWebhooks(cmd.Context())
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]string, 0, len(eps))
	for _, ep := range eps {
		out = append(out, ep.ID+"\t"+ep.URL)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
