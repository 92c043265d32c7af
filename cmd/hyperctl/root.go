package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hypersdk/hypersdk/client"
)

// defaultServer is where hypervisord listens unless configured otherwise.
const defaultServer = "http://127.0.0.1:8080"

// app is one invocation's state: global flags, and the API client built
// from them when a command first needs it.
type app struct {
	env *env

	server, token, tokenFile, dataDir, caCert, format string
	insecure                                          bool
	timeout                                           time.Duration

	root *cobra.Command
	conn connection
	c    *client.Client
}

// connection is where the server URL and token came from, for messages.
type connection struct {
	server, serverSource string
	token, tokenSource   string
	// noToken explains, when token is empty, what was looked at.
	noToken string
}

func newRootCommand(e *env) (*cobra.Command, *app) {
	a := &app{env: e}
	root := &cobra.Command{
		Use:   "hyperctl",
		Short: "Command-line client of hypervisord, the HyperSDK export daemon",
		Long: `hyperctl submits and follows VM export jobs on a hypervisord daemon and
browses its providers and VMs.

Finding the daemon: --server, else $HYPERSDK_SERVER, else the URL the daemon
recorded in its data directory (<data-dir>/endpoint), else ` + defaultServer + `.
The data directory is --data-dir, else $HYPERSDK_DATA_DIR, else the daemon's
default (` + e.defaultDataDir() + `).

Token: --token-file (or $HYPERSDK_TOKEN_FILE), else $HYPERSDK_TOKEN, else the
admin token a daemon without configured tokens generated in
<data-dir>/admin.token — so on the daemon's host, as its user, hyperctl needs
no configuration. That token is only sent to the daemon recorded in the same
directory, unless --data-dir pairs them explicitly. --token works too but
shows the token in the process list.

Exit codes: 0 success; 1 the operation failed (an API error, or a watched
job that failed or was cancelled); 2 the command line is wrong.`,
		Version:       buildVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			switch a.format {
			case "table", "json", "yaml":
				return nil
			}
			return usageErrorf("-o/--output-format must be table, json or yaml, not %q", a.format)
		},
		RunE: groupRunE,
	}
	a.root = root
	pf := root.PersistentFlags()
	pf.StringVar(&a.server, "server", "", "hypervisord URL (env HYPERSDK_SERVER; default: <data-dir>/endpoint, else "+defaultServer+")")
	pf.StringVar(&a.token, "token", "", "API token (visible in the process list: prefer HYPERSDK_TOKEN or --token-file)")
	pf.StringVar(&a.tokenFile, "token-file", "", "file holding the API token (env HYPERSDK_TOKEN_FILE)")
	pf.StringVar(&a.dataDir, "data-dir", "", "data directory of a local daemon, for its endpoint and admin.token (env HYPERSDK_DATA_DIR)")
	pf.BoolVar(&a.insecure, "insecure", false, "do not verify the server's TLS certificate (the token goes to whoever answers)")
	pf.StringVar(&a.caCert, "cacert", "", "PEM file of the CA that signed the server's certificate")
	pf.StringVarP(&a.format, "output-format", "o", "table", "output format: table, json or yaml")
	pf.DurationVar(&a.timeout, "timeout", 30*time.Second, "timeout of each API request (watching and following are not bounded by it); 0 for none")
	_ = root.RegisterFlagCompletionFunc("output-format", cobra.FixedCompletions([]string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
	_ = root.MarkPersistentFlagFilename("cacert", "pem", "crt")
	_ = root.MarkPersistentFlagDirname("data-dir")

	root.AddCommand(a.jobsCommand(), a.exportCommand(), a.ovaCommand(), a.providersCommand(), a.vmsCommand(), a.statusCommand(), a.versionCommand(), a.verifyCommand(), a.diskCommand(), a.vmaCommand())
	root.AddCommand(a.webhooksCommand())
	root.AddCommand(a.schedulesCommand())
	root.AddCommand(a.clusterCommand())
	return root, a
}

// groupRunE makes a command group print its help, and reject what is not
// one of its subcommands.
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return cmd.Help()
}

// action wraps a command's work so that its errors are told apart from
// command-line errors raised by cobra.
func action(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd, args)
		var ue *usageError
		if err == nil || errors.As(err, &ue) {
			return err
		}
		return &opError{err: err}
	}
}

// exactArgs is cobra.ExactArgs naming what is expected.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usageErrorf("%s takes %d argument(s) (%s), got %d", cmd.CommandPath(), len(names), strings.Join(names, " "), len(args))
		}
		return nil
	}
}

// resolve works out the server and token from flags, environment and the
// daemon's data directory.
func (a *app) resolve() connection {
	getenv := a.env.getenv
	flags := a.root.PersistentFlags()
	dataDir, dataDirExplicit := a.dataDir, flags.Changed("data-dir")
	if !dataDirExplicit {
		if d := getenv("HYPERSDK_DATA_DIR"); d != "" {
			dataDir, dataDirExplicit = d, true
		} else {
			dataDir = a.env.defaultDataDir()
		}
	}
	endpointFile := filepath.Join(dataDir, client.EndpointFile)
	endpoint, endpointErr := client.ReadEndpoint(dataDir)

	var c connection
	switch {
	case flags.Changed("server"):
		c.server, c.serverSource = a.server, "--server"
	case getenv("HYPERSDK_SERVER") != "":
		c.server, c.serverSource = getenv("HYPERSDK_SERVER"), "HYPERSDK_SERVER"
	case endpoint != "":
		c.server, c.serverSource = endpoint, endpointFile
	default:
		c.server, c.serverSource = defaultServer, "the default"
		if endpointErr != nil {
			fmt.Fprintf(a.env.stderr, "hyperctl: warning: cannot read %s: %v; using %s\n", endpointFile, endpointErr, defaultServer)
		}
	}
	c.server = strings.TrimRight(strings.TrimSpace(c.server), "/")

	tokenFile, tokenFileSource := a.tokenFile, "--token-file"
	if !flags.Changed("token-file") {
		tokenFile, tokenFileSource = getenv("HYPERSDK_TOKEN_FILE"), "HYPERSDK_TOKEN_FILE"
	}
	adminToken := filepath.Join(dataDir, client.AdminTokenFile)
	switch {
	case flags.Changed("token"):
		fmt.Fprintln(a.env.stderr, "hyperctl: warning: a token given with --token is visible to other users in the process list; prefer HYPERSDK_TOKEN or --token-file")
		c.token, c.tokenSource = strings.TrimSpace(a.token), "--token"
	case tokenFile != "":
		tok, err := client.ReadToken(tokenFile)
		if err != nil {
			c.noToken = fmt.Sprintf("the token file named by %s could not be read: %v", tokenFileSource, err)
			return c
		}
		c.token, c.tokenSource = tok, tokenFile
	case getenv("HYPERSDK_TOKEN") != "":
		c.token, c.tokenSource = strings.TrimSpace(getenv("HYPERSDK_TOKEN")), "HYPERSDK_TOKEN"
	case !dataDirExplicit && !sameDaemon(c, endpoint):
		// Never send this host's admin token to a server the user named
		// unless they said it belongs to that data directory.
		c.noToken = fmt.Sprintf("%s was not used because %s (from %s) is not the daemon recorded in %s; pass --data-dir %s to use it with that server",
			adminToken, c.server, c.serverSource, endpointFile, dataDir)
	default:
		tok, err := client.ReadToken(adminToken)
		switch {
		case err == nil:
			c.token, c.tokenSource = tok, adminToken
		case errors.Is(err, fs.ErrNotExist):
			c.noToken = fmt.Sprintf("%s does not exist (the daemon writes it only when no api.tokens are configured)", adminToken)
		case errors.Is(err, fs.ErrPermission):
			c.noToken = fmt.Sprintf("%s is not readable by this user (it is private to the daemon's user; run hyperctl as that user)", adminToken)
		default:
			c.noToken = err.Error()
		}
	}
	return c
}

// sameDaemon reports whether the server is the local daemon whose data
// directory holds the admin token: the one its endpoint file names, or a
// loopback address when it recorded none.
func sameDaemon(c connection, endpoint string) bool {
	if endpoint != "" {
		return strings.TrimRight(endpoint, "/") == c.server
	}
	u, err := url.Parse(c.server)
	return err == nil && isLoopback(u.Hostname())
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// client returns the API client, building it on first use.
func (a *app) client() (*client.Client, error) {
	if a.c != nil {
		return a.c, nil
	}
	a.conn = a.resolve()
	if a.conn.token == "" {
		return nil, fmt.Errorf("no API token for %s: %s.\n"+
			"Fix: on the daemon's host, run hyperctl as the daemon's user (or pass --data-dir with the daemon's data directory); "+
			"elsewhere, export HYPERSDK_TOKEN=<token> or pass --token-file FILE with a token from the daemon's api.tokens configuration",
			a.conn.server, a.conn.noToken)
	}
	if u, err := url.Parse(a.conn.server); err == nil && u.Scheme == "http" && !isLoopback(u.Hostname()) {
		fmt.Fprintf(a.env.stderr, "hyperctl: warning: %s is plain HTTP: the token crosses the network unencrypted (configure api.tls_cert on the daemon)\n", a.conn.server)
	}
	rt, err := client.NewTransport(client.TLSOptions{CAFile: a.caCert, InsecureSkipVerify: a.insecure})
	if err != nil {
		return nil, usageErrorf("--cacert: %v", err)
	}
	var transport http.RoundTripper = rt
	if a.env.wrapTransport != nil {
		transport = a.env.wrapTransport(rt)
	}
	c, err := client.New(a.conn.server, client.Options{
		Token: a.conn.token, Transport: transport, Timeout: a.timeout,
		UserAgent: "hyperctl/" + buildVersion(), Backoff: a.env.retry,
		OnRetry: func(op string, attempt int, err error, d time.Duration) {
			fmt.Fprintf(a.env.stderr, "hyperctl: %s: %v; retrying in %s\n", op, err, d.Round(time.Millisecond))
		},
	})
	if err != nil {
		return nil, usageErrorf("server %s (from %s): %v", a.conn.server, a.conn.serverSource, err)
	}
	a.c = c
	return c, nil
}
