package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/hypersdk/hypersdk/config"
)

// healthcheckTimeout bounds one probe; container runtimes run the probe
// with their own, usually longer, timeout.
const healthcheckTimeout = 5 * time.Second

// healthcheck probes the /healthz of the daemon configured by cfg on this
// host and reports whether it answered 200. It exists so that a container
// image without a shell or curl can carry a HEALTHCHECK: the image runs
// `hypervisord --healthcheck` with the same configuration as the daemon, so
// the probe follows api.listen and TLS wherever they are set.
func healthcheck(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer) int {
	url, client, err := healthcheckTarget(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "hypervisord: healthcheck: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "hypervisord: healthcheck: %v\n", err)
		return 1
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "hypervisord: healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "hypervisord: healthcheck: %s answered %s\n", url, resp.Status)
		return 1
	}
	fmt.Fprintf(stdout, "healthy: %s\n", url)
	return 0
}

// healthcheckTarget turns api.listen into the URL of /healthz on this host
// and a client for it. Over TLS the client accepts exactly the configured
// certificate: the probe dials an address (127.0.0.1) the certificate need
// not name, and pinning the leaf is stricter than any name check.
func healthcheckTarget(cfg *config.Config) (string, *http.Client, error) {
	host, port, err := net.SplitHostPort(cfg.API.Listen)
	if err != nil {
		return "", nil, fmt.Errorf("api.listen %q: %w", cfg.API.Listen, err)
	}
	if host == "" {
		host = "0.0.0.0" // ":8080" listens on every address; advertised picks loopback
	}
	addr := advertised(net.JoinHostPort(host, port))
	transport := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	if cfg.API.TLSCert == "" {
		return "http://" + addr + "/healthz", &http.Client{Transport: transport}, nil
	}
	pinned, err := leafCertificate(cfg.API.TLSCert)
	if err != nil {
		return "", nil, fmt.Errorf("api.tls_cert: %w", err)
	}
	transport.TLSClientConfig = &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is replaced by the pin below, not dropped.
		InsecureSkipVerify: true, //nolint:gosec // see VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, pinned) {
				return errors.New("the server's certificate is not the one in api.tls_cert")
			}
			return nil
		},
	}
	return "https://" + addr + "/healthz", &http.Client{Transport: transport}, nil
}

// leafCertificate returns the DER bytes of the first certificate in a PEM file.
func leafCertificate(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, fmt.Errorf("%s holds no PEM certificate", path)
		}
		if block.Type == "CERTIFICATE" {
			return block.Bytes, nil
		}
	}
}
