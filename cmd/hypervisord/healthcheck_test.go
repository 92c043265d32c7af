package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// healthcheckRun runs `hypervisord --healthcheck` in process against the
// daemon's configuration with api.listen set to listen.
func healthcheckRun(t *testing.T, dmn *daemon, listen string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := run(context.Background(), []string{"--healthcheck", "--config", dmn.config, "--data-dir", dmn.dataDir, "--listen", listen}, &out, &out, testRegistry())
	return code, out.String()
}

// --healthcheck (the container image's HEALTHCHECK) exits 0 while the
// daemon serves /healthz, whether api.listen names loopback, every address
// or only a port, and 1 once it is gone.
func TestHealthcheck(t *testing.T) {
	dmn := newDaemon(t, "")
	dmn.start()
	u, err := url.Parse(dmn.url)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(u.Host)
	for _, listen := range []string{"127.0.0.1:" + port, "0.0.0.0:" + port, ":" + port} {
		if code, out := healthcheckRun(t, dmn, listen); code != 0 || !strings.Contains(out, "healthy: http://127.0.0.1:"+port+"/healthz") {
			t.Errorf("listen %s: exit %d: %s", listen, code, out)
		}
	}
	dmn.kill()
	if code, out := healthcheckRun(t, dmn, "127.0.0.1:"+port); code != 1 || !strings.Contains(out, "healthcheck:") {
		t.Errorf("daemon gone: exit %d: %s", code, out)
	}
}

// Over TLS the probe accepts exactly the configured certificate, although
// it dials 127.0.0.1 whatever names the certificate carries; another
// certificate fails it.
func TestHealthcheckTLSPinsTheConfiguredCertificate(t *testing.T) {
	dir := t.TempDir()
	cert, key, _ := selfSigned(t, dir)
	dmn := newDaemon(t, fmt.Sprintf("api:\n  tls_cert: %s\n  tls_key: %s\n", cert, key))
	dmn.start()
	u, err := url.Parse(dmn.url)
	if err != nil {
		t.Fatal(err)
	}
	if code, out := healthcheckRun(t, dmn, u.Host); code != 0 || !strings.Contains(out, "healthy: https://") {
		t.Fatalf("exit %d: %s", code, out)
	}

	// The same daemon, probed with a configuration naming another
	// certificate (and its key, which the probe never reads).
	other := filepath.Join(dir, "other")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	otherCert, otherKey, _ := selfSigned(t, other)
	cfg := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("api:\n  tls_cert: %s\n  tls_key: %s\n", otherCert, otherKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code := run(context.Background(), []string{"--healthcheck", "--config", cfg, "--data-dir", dmn.dataDir, "--listen", u.Host}, &out, &out, testRegistry())
	if code != 1 || !strings.Contains(out.String(), "not the one in api.tls_cert") {
		t.Errorf("another certificate: exit %d: %s", code, out.String())
	}
}
