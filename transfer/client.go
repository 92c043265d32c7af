package transfer

import (
	"bufio"
	"context"
	"crypto/sha1" //nolint:gosec // SHA-1 thumbprints are what vSphere shows; the pin compares, it does not sign.
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// ClientOptions configures NewHTTPClient. The zero value verifies server
// certificates against the system roots and uses the defaults below.
type ClientOptions struct {
	// InsecureSkipVerify disables certificate verification. Only when the
	// user asked for it; prefer RootCAs or Thumbprint.
	InsecureSkipVerify bool
	// RootCAs replaces the system roots (e.g. a private vCenter CA).
	RootCAs *x509.CertPool
	// Thumbprint pins the server's leaf certificate by its SHA-1 (40 hex
	// digits) or SHA-256 (64 hex digits) fingerprint, colons and case
	// ignored, as vSphere shows it. When set, the pin replaces chain and host
	// name verification (that is how vSphere users trust self-signed hosts),
	// and every connection whose leaf does not match fails.
	Thumbprint string

	// DialTimeout bounds TCP connection set-up. Default 30s.
	DialTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake. Default 30s.
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for response headers after the
	// request is sent. Default 2m. Bodies have no deadline (disks are GiBs);
	// Options.StallTimeout catches bodies that stop flowing.
	ResponseHeaderTimeout time.Duration
	// MaxConnsPerHost caps HTTP/1.1 connections per host; beyond it requests
	// queue, so it should cover Concurrency × ChunkConcurrency. Default 64.
	MaxConnsPerHost int
	// DisableHTTP2 restricts the client to HTTP/1.1.
	DisableHTTP2 bool
	// ReadBufferSize is how much each connection may read from its socket
	// in one system call (below TLS: many records per call), and bounds
	// the buffer the HTTP layer keeps above it (at most 64 KiB). Both are
	// held for every open connection. Default 256 KiB, for a few long
	// streams; a client of many connections to one host whose bodies go
	// straight into the caller's buffers (64 EBS block workers) sets it
	// lower, or those buffers alone take tens of MiB.
	ReadBufferSize int
}

// NewHTTPClient returns the project's HTTP client: TLS as configured, bounded
// connection set-up, keep-alives, HTTP/1.1 and HTTP/2, proxy from the
// environment (HTTPS_PROXY, NO_PROXY…), no overall timeout and no transparent
// decompression (the bytes hashed must be the bytes served). It fails only on
// a malformed Thumbprint: an unusable pin must never silently mean "no pin".
func NewHTTPClient(opts ClientOptions) (*http.Client, error) {
	tlsConf, err := TLSConfig(opts)
	if err != nil {
		return nil, err
	}

	dialer := &net.Dialer{
		Timeout:   orDefault(opts.DialTimeout, 30*time.Second),
		KeepAlive: 30 * time.Second,
	}
	maxConns := opts.MaxConnsPerHost
	if maxConns <= 0 {
		maxConns = 64
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(!opts.DisableHTTP2)

	readSize := opts.ReadBufferSize
	if readSize <= 0 {
		readSize = socketReadSize
	}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           bufferedDial(dialer, readSize),
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   orDefault(opts.TLSHandshakeTimeout, 30*time.Second),
		ResponseHeaderTimeout: orDefault(opts.ResponseHeaderTimeout, 2*time.Minute),
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          max(100, maxConns),
		MaxIdleConnsPerHost:   maxConns,
		MaxConnsPerHost:       maxConns,
		DisableCompression:    true,
		ForceAttemptHTTP2:     !opts.DisableHTTP2,
		Protocols:             &protos,
		// Larger than the 4 KiB default: fewer reads per MiB.
		ReadBufferSize: min(64<<10, readSize),
	}
	return &http.Client{Transport: t}, nil
}

// socketReadSize is how much one read system call may bring in by
// default. TLS reads its records (at most 16 KiB each) from the connection
// one at a time, so without a buffer below it receiving a disk cost one or
// two system calls per record: about a third of a receiving stream's CPU
// time, more than its decryption.
const socketReadSize = 256 << 10

// bufferedDial dials like d and reads each connection through a buffer of
// size bytes, filled by one system call with whatever has arrived.
func bufferedDial(d *net.Dialer, size int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, size)}, nil
	}
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// TLSConfig is the TLS part of NewHTTPClient, for clients that bring their
// own transport (the vSphere SOAP client): minimum TLS 1.2, RootCAs or the
// system roots, InsecureSkipVerify only when asked, and a thumbprint pin
// checked on every connection, in a single handshake.
func TLSConfig(opts ClientOptions) (*tls.Config, error) {
	tlsConf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            opts.RootCAs,
		InsecureSkipVerify: opts.InsecureSkipVerify, //nolint:gosec // only when the caller asked for it
	}
	if opts.Thumbprint != "" {
		verify, err := thumbprintVerifier(opts.Thumbprint)
		if err != nil {
			return nil, err
		}
		// The pin is the trust decision; chain verification would reject the
		// self-signed certificates pins exist for.
		tlsConf.InsecureSkipVerify = true
		// VerifyConnection, unlike VerifyPeerCertificate, also runs on resumed
		// sessions.
		tlsConf.VerifyConnection = verify
	}
	return tlsConf, nil
}

// thumbprintVerifier parses a SHA-1 or SHA-256 fingerprint and returns the
// check for tls.Config.VerifyConnection.
func thumbprintVerifier(pin string) (func(tls.ConnectionState) error, error) {
	clean := strings.NewReplacer(":", "", " ", "", "-", "").Replace(strings.TrimSpace(pin))
	want, err := hex.DecodeString(clean)
	if err != nil || (len(want) != sha1.Size && len(want) != sha256.Size) {
		return nil, errors.New("transfer: TLS thumbprint must be a SHA-1 (40 hex digits) or SHA-256 (64 hex digits) fingerprint")
	}
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("%w: server %s presented no certificate", ErrThumbprintMismatch, cs.ServerName)
		}
		raw := cs.PeerCertificates[0].Raw
		var got []byte
		if len(want) == sha1.Size {
			s := sha1.Sum(raw) //nolint:gosec // fingerprint comparison, see import
			got = s[:]
		} else {
			s := sha256.Sum256(raw)
			got = s[:]
		}
		if subtle.ConstantTimeCompare(got, want) != 1 {
			// Showing what the server presented lets an operator compare it
			// with the vCenter console; a fingerprint is not a secret.
			return fmt.Errorf("%w: server %s presented %s", ErrThumbprintMismatch, cs.ServerName, formatThumbprint(got))
		}
		return nil
	}, nil
}

func formatThumbprint(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(parts, ":")
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
