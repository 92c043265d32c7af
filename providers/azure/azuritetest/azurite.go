// Package azuritetest runs a real Azurite blob service (the Azure Storage
// emulator, npm package azurite 3.35.0) for tests: Start launches
// azurite-blob on a free loopback port with in-memory persistence, waits
// until it answers, and stops it when the test ends.
//
// Azurite is installed once into a cache directory by `make test-deps`
// (scripts/ensure-test-deps.sh, from the package.json and package-lock.json
// beside this file): $HYPERSDK_AZURITE_DIR, or
// <user cache dir>/hypersdk/azurite-3.35.0 (~/.cache/… on Linux). When it is
// missing, or Node.js is, the test fails with the command that installs it;
// it is never skipped.
//
// The account is the emulator's well-known development account
// (AccountName, AccountKey), the same as azblobfake's, and URL is the
// path-style account endpoint http://127.0.0.1:PORT/devstoreaccount1.
package azuritetest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/providers/azure/azblobfake"
)

// Version is the Azurite release the tests run (newer ones need Node 22).
const Version = "3.35.0"

// The emulator's well-known development account.
const (
	AccountName = azblobfake.AccountName
	AccountKey  = azblobfake.AccountKey
)

// DirEnv names the environment variable that overrides the install directory.
const DirEnv = "HYPERSDK_AZURITE_DIR"

// Azurite is a running Azurite blob service.
type Azurite struct {
	// URL is the account's blob endpoint, path-style:
	// http://127.0.0.1:PORT/devstoreaccount1.
	URL         string
	AccountName string
	AccountKey  string
}

// ConnectionString is the storage connection string of the account.
func (a *Azurite) ConnectionString() string {
	return "DefaultEndpointsProtocol=http;AccountName=" + a.AccountName + ";AccountKey=" + a.AccountKey + ";BlobEndpoint=" + a.URL + ";"
}

// Dir is where Azurite is (to be) installed.
func Dir() string {
	if d := os.Getenv(DirEnv); d != "" {
		return d
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = filepath.Join(os.TempDir(), "cache")
	}
	return filepath.Join(base, "hypersdk", "azurite-"+Version)
}

// InstallHint is the command that installs Azurite where Dir says.
func InstallHint() string {
	return fmt.Sprintf("run `make test-deps` in the repository (or: npm install --prefix %s azurite@%s; it needs Node.js ≥ 18 and npm: apt-get install nodejs npm)", Dir(), Version)
}

// binary finds azurite-blob of the pinned version.
func binary() (string, error) {
	dir := Dir()
	bin := filepath.Join(dir, "node_modules", ".bin", "azurite-blob")
	raw, err := os.ReadFile(filepath.Join(dir, "node_modules", "azurite", "package.json"))
	if err != nil {
		return "", fmt.Errorf("azurite %s is not installed in %s", Version, dir)
	}
	var pkg struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(raw, &pkg); err != nil || pkg.Version != Version {
		return "", fmt.Errorf("%s holds azurite %q, not %s", dir, pkg.Version, Version)
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("azurite %s in %s has no azurite-blob", Version, dir)
	}
	if _, err := exec.LookPath("node"); err != nil {
		return "", errors.New("node is not in PATH")
	}
	return bin, nil
}

// listening is the line Azurite prints once its port is bound.
var listening = regexp.MustCompile(`successfully listens on (http://127\.0\.0\.1:\d+)`)

// Start launches Azurite's blob service for the test and stops it at
// cleanup. It fails the test when Azurite is missing or does not come up.
func Start(t testing.TB) *Azurite {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatalf("azuritetest: %v; %s", err, InstallHint())
	}
	// Port 0: Azurite binds a free port and says which, so there is no
	// window in which another process could take a port picked for it.
	cmd := exec.Command(bin,
		"--blobHost", "127.0.0.1", "--blobPort", "0",
		"--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck",
		"--disableProductStyleUrl", "--silent")
	cmd.Dir = t.TempDir()
	// The well-known account only: an AZURITE_ACCOUNTS inherited from the
	// environment would replace it.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AZURITE_ACCOUNTS=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("azuritetest: %v", err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("azuritetest: start %s: %v; %s", bin, err, InstallHint())
	}
	exited := make(chan struct{})
	var log strings.Builder
	found := make(chan string, 1)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if log.Len() < 8<<10 {
				log.WriteString(line + "\n")
			}
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	var base string
	select {
	case base = <-found:
	case <-exited:
		t.Fatalf("azuritetest: azurite-blob exited before listening:\n%s", log.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("azuritetest: azurite-blob did not start listening within 60s:\n%s", log.String())
	}
	a := &Azurite{URL: base + "/" + AccountName, AccountName: AccountName, AccountKey: AccountKey}
	if err := waitAnswering(a.URL); err != nil {
		t.Fatalf("azuritetest: %v", err)
	}
	return a
}

// waitAnswering polls until the service answers HTTP at all (any status:
// an anonymous request is refused, which proves it is serving).
func waitAnswering(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"?comp=list", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("azurite at %s does not answer: %v", url, last)
}
