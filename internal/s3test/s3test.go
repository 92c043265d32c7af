// Package s3test starts a real S3 server for tests: versitygw v1.8.0
// (Versity's S3 gateway, SigV4 verified, ranged GETs, pre-signed URLs,
// multipart uploads, checksums) with a posix backend in a temporary
// directory, on a loopback port, behind a counting proxy that records
// every request the server was asked (method, bucket and key, Range), so
// that a test can assert what reached S3 without trusting the client.
//
// The binary is built once into the per-user cache by
// scripts/build-versitygw.sh (make test-deps runs it). A test that cannot
// find it fails, saying how to build it; it never skips. Credentials reach
// the server through its environment, never its argument list.
package s3test

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Version is the versitygw release the tests run against.
const Version = "v1.8.0"

// Binary returns the path of the versitygw binary: HYPERSDK_VERSITYGW, or
// the per-user cache where scripts/build-versitygw.sh puts it.
func Binary() string {
	if p := os.Getenv("HYPERSDK_VERSITYGW"); p != "" {
		return p
	}
	dir := os.Getenv("XDG_CACHE_HOME")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache")
	}
	return filepath.Join(dir, "hypersdk", "versitygw-"+Version, "versitygw")
}

// Server is a running versitygw.
type Server struct {
	// URL is the S3 endpoint (the counting proxy), for path-style
	// addressing.
	URL string
	// Region, AccessKeyID and SecretAccessKey are what its SigV4 checks.
	Region, AccessKeyID, SecretAccessKey string
	// Dir is the posix backend's root: one directory per bucket.
	Dir string

	mu   sync.Mutex
	reqs []Request
}

// Request is one request that reached the server.
type Request struct {
	Method string
	// Path is /bucket/key.
	Path string
	// Range is the Range header, "" when none.
	Range string
	// Presigned is true for a request authenticated by its query string
	// (a pre-signed URL).
	Presigned bool
}

// Options configure the server: the region its SigV4 is scoped to
// (us-east-1 when empty) and its root user's key pair (made up when
// empty: a test that signs as an AWS account on both EC2 and S3 passes
// the account's).
type Options struct {
	Region, AccessKeyID, SecretAccessKey string
}

// Start starts versitygw for the test and stops it when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	bin := Binary()
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("versitygw %s not found at %s: build it with `make test-deps` (or scripts/build-versitygw.sh), "+
			"or set HYPERSDK_VERSITYGW to a versitygw %s binary", Version, bin, Version)
	}
	root := t.TempDir()
	s := &Server{
		Region:      cmp.Or(o.Region, "us-east-1"),
		AccessKeyID: cmp.Or(o.AccessKeyID, "AKIAS3TEST"+randomUpper(10)), SecretAccessKey: cmp.Or(o.SecretAccessKey, randomUpper(40)),
		Dir: filepath.Join(root, "data"),
	}
	for _, d := range []string{s.Dir, filepath.Join(root, "meta")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + port
	cmd := exec.Command(bin, "--port", addr, "--region", s.Region, "--quiet",
		"posix", "--sidecar", filepath.Join(root, "meta"), s.Dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+s.AccessKeyID, "ROOT_SECRET_ACCESS_KEY="+s.SecretAccessKey)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("versitygw output:\n%s", out.String())
		}
	})
	if err := waitListening(addr, exited); err != nil {
		t.Fatalf("versitygw did not start: %v\n%s", err, out.String())
	}
	target := &url.URL{Scheme: "http", Host: addr}
	proxy := httputil.NewSingleHostReverseProxy(target)
	// The Host header stays the proxy's: it is what the client signed.
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.reqs = append(s.reqs, Request{Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"),
			Presigned: r.URL.Query().Get("X-Amz-Signature") != ""})
		s.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	s.URL = front.URL
	return s
}

// Client returns an S3 client of the server's root user (path-style).
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKeyID, s.SecretAccessKey, ""),
	})
}

// CreateBucket creates a bucket.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	if _, err := s.Client().CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

// Requests returns the requests the server was asked so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Keys lists the objects of a bucket.
func (s *Server) Keys(t testing.TB, bucket string) []string {
	t.Helper()
	var keys []string
	pages := s3.NewListObjectsV2Paginator(s.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatalf("list %s: %v", bucket, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

// waitListening waits until addr accepts connections, the process exits,
// or 30 seconds pass.
func waitListening(addr string, exited <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("not listening after 30s")
}

func randomUpper(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // never fails on supported platforms
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
