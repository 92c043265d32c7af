package main

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/internal/netguard"
	"github.com/hypersdk/hypersdk/objstore"
)

// outputTargets turns the configured object stores into the job engine's
// targets, each with a client that applies the SSRF guard to every
// connection (private addresses only where allow_private says so).
func outputTargets(cfg []config.OutputTarget) (objstore.Targets, error) {
	var ts objstore.Targets
	for i, t := range cfg {
		key := fmt.Sprintf("output_targets[%d]", i)
		client, err := objstore.GuardedClient(netguard.Guard{AllowPrivate: t.AllowPrivate, Setting: key + ".allow_private"})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		name := t.Name
		if name == "" {
			name = key
		}
		ts = append(ts, objstore.Target{
			Name: name, URL: t.URL,
			S3: objstore.S3Config{Endpoint: t.Endpoint, Region: t.Region, AccessKeyID: t.AccessKeyID,
				SecretAccessKey: t.SecretAccessKey.Reveal(), PathStyle: t.PathStyle, HTTPClient: client},
			GCS:   objstore.GCSConfig{Endpoint: t.Endpoint, CredentialsFile: t.CredentialsFile, Anonymous: t.Anonymous, HTTPClient: client},
			Azure: objstore.AzureConfig{Endpoint: t.Endpoint, AccountKey: t.AccountKey.Reveal(), HTTPClient: client},
		})
	}
	return ts, nil
}

// demoBucket is the bucket of the demo's object-storage output target.
const demoBucket = "demo-exports"

// startDemoOutput serves an in-process S3 (gofakes3, in memory) on a
// loopback port for --demo, and returns the output target that names it:
// exports with --output s3://demo-exports/… land there.
func startDemoOutput() (objstore.Target, func(), error) {
	backend := s3mem.New()
	if err := backend.CreateBucket(demoBucket); err != nil {
		return objstore.Target{}, nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return objstore.Target{}, nil, err
	}
	srv := &http.Server{Handler: gofakes3.New(backend).Server(), ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = srv.Serve(l) }()
	client, err := objstore.GuardedClient(netguard.Guard{AllowPrivate: true})
	if err != nil {
		srv.Close()
		return objstore.Target{}, nil, err
	}
	t := objstore.Target{Name: "demo-s3", URL: "s3://" + demoBucket + "/", S3: objstore.S3Config{
		Endpoint: "http://" + l.Addr().String(), Region: "us-east-1", AccessKeyID: "demo", SecretAccessKey: "demo",
		PathStyle: true, HTTPClient: client}}
	return t, func() { srv.Close() }, nil
}
