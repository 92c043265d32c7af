package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/daemon/store/storetest"
)

// buildHyperctl builds hyperctl, so tests can run it as a user would
// against a daemon process.
func buildHyperctl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hyperctl")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/hypersdk/hypersdk/cmd/hyperctl").CombinedOutput()
	if err != nil {
		t.Fatalf("go build hyperctl: %v\n%s", err, out)
	}
	return bin
}

func runHyperctl(t *testing.T, bin string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("hyperctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// A PostgreSQL password, in each form a DSN can carry it, appears in none
// of the places a DSN surfaces: the status API, the daemon's log,
// --check-config and hyperctl status. Each surface still names the
// database (host and a masked password), so the test cannot pass by
// printing nothing.
func TestDatabasePasswordNeverShown(t *testing.T) {
	const secret = "Db-pw-9f2e7c-must-not-leak"
	hyperctl := buildHyperctl(t)
	for _, tc := range []struct {
		name string
		dsn  func(base *url.URL, schema string) string
	}{
		{"url-query", func(u *url.URL, _ string) string { return u.String() + "&password=" + secret }},
		{"url-userinfo", func(u *url.URL, _ string) string {
			u.User = url.UserPassword(u.User.Username(), secret)
			return u.String()
		}},
		{"keyword", func(u *url.URL, schema string) string { return keywordDSN(u, schema) + " password=" + secret }},
		{"keyword-quoted", func(u *url.URL, schema string) string {
			return keywordDSN(u, schema) + " password='two words " + secret + "'"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, err := url.Parse(storetest.PostgresURL(t))
			if err != nil {
				t.Fatal(err)
			}
			dsn := tc.dsn(base, base.Query().Get("search_path"))
			env := []string{"HYPERSDK_DATABASE_URL=" + dsn}
			dmn := newDaemon(t, "log:\n  level: debug\n", env...)

			check := exec.Command(os.Args[0], "--check-config", "--config", dmn.config, "--data-dir", dmn.dataDir)
			check.Env = append(append(os.Environ(), childEnv+"=1"), env...)
			checkOut, err := check.CombinedOutput()
			if err != nil {
				t.Fatalf("--check-config: %v\n%s", err, checkOut)
			}

			dmn.start()
			var status json.RawMessage
			if code := dmn.call("GET", "/api/v1/status", nil, &status); code != 200 {
				t.Fatalf("status: %d", code)
			}
			ctl := runHyperctl(t, hyperctl, []string{"HYPERSDK_DATA_DIR=" + dmn.dataDir}, "status")
			dmn.kill()

			for name, out := range map[string]string{
				"status API": string(status), "daemon log": dmn.out.String(),
				"--check-config": string(checkOut), "hyperctl status": ctl,
			} {
				if strings.Contains(out, secret) {
					t.Errorf("%s shows the database password:\n%s", name, out)
				}
				if !strings.Contains(out, "127.0.0.1") || !strings.Contains(out, "xxxxx") {
					t.Errorf("%s does not name the database with its password masked:\n%s", name, out)
				}
			}
		})
	}
}

// keywordDSN is the libpq key/value form of the test server's URL.
func keywordDSN(u *url.URL, schema string) string {
	return fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable search_path=%s",
		u.Hostname(), u.Port(), u.User.Username(), strings.TrimPrefix(u.Path, "/"), schema)
}
