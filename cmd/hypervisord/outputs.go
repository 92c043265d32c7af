package main

import (
	"fmt"

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
