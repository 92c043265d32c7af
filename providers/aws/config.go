package aws

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/internal/netguard"
)

// Config is the settings of one AWS account and region: an item of
// `providers:` with type aws.
//
//	providers:
//	  - name: aws1
//	    type: aws
//	    region: us-east-1
//	    access_key_id: AKIA...                        # optional: without keys, the SDK's
//	    secret_access_key: {env: AWS1_SECRET_KEY}     #   default chain (env, shared config,
//	    profile: exporter                             #   SSO, IMDS) is used, with profile
//	    endpoints: {ec2: URL, ebs: URL, s3: URL}      # optional, compatible clouds and tests
type Config struct {
	// Region is the AWS region; required unless the profile names one.
	Region string `yaml:"region"`
	// AccessKeyID and SecretAccessKey are a static key pair. Both or
	// neither: without them the SDK's default credential chain is used.
	AccessKeyID     string        `yaml:"access_key_id"`
	SecretAccessKey config.Secret `yaml:"secret_access_key"`
	// SessionToken goes with temporary keys (ASIA…).
	SessionToken config.Secret `yaml:"session_token"`
	// Profile selects a profile of the shared configuration files for the
	// default chain.
	Profile   string    `yaml:"profile"`
	Endpoints Endpoints `yaml:"endpoints"`
}

// Endpoints override the services' endpoints (an S3-compatible store, a
// VPC interface endpoint, the test server). Empty means AWS's own for the
// region.
type Endpoints struct {
	EC2 string `yaml:"ec2"`
	EBS string `yaml:"ebs"`
	S3  string `yaml:"s3"`
}

// endpointGuard checks endpoint URLs with the project's SSRF guard. An
// endpoint is set by the operator in the configuration file, never through
// the API, and private addresses are what VPC interface endpoints and
// on-premises compatible clouds resolve to — the same trust as the vSphere
// URL, which may name any host. What the guard refuses whatever the
// settings (zone ids, odd IPv4 spellings, bad host names, control
// characters) stays refused.
var endpointGuard = netguard.Guard{AllowPrivate: true}

var regionPattern = regexp.MustCompile(`^[a-z]{2}(-[a-z0-9]+)+-[0-9]+$`)

// Decode is the configuration decoder of type aws: strict, every problem
// with its key and line.
func Decode(s *config.ProviderSettings) (*Config, error) {
	var c Config
	if err := s.Decode(&c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks the settings; each problem names its key (config.Validate
// prefixes the instance's path). It never quotes a secret.
func (c *Config) Validate() error {
	var errs []error
	switch {
	case c.Region == "" && c.Profile == "":
		errs = append(errs, errors.New("region: required (e.g. us-east-1) unless the profile sets one"))
	case c.Region != "" && !regionPattern.MatchString(c.Region):
		errs = append(errs, fmt.Errorf("region: %q is not a region name such as us-east-1", c.Region))
	}
	hasKey, hasSecret := c.AccessKeyID != "", c.SecretAccessKey.IsSet()
	switch {
	case hasKey && !hasSecret:
		errs = append(errs, errors.New("secret_access_key: required with access_key_id"))
	case !hasKey && hasSecret:
		errs = append(errs, errors.New("access_key_id: required with secret_access_key"))
	case hasKey && c.Profile != "":
		errs = append(errs, errors.New("profile: set either a profile or access_key_id/secret_access_key, not both"))
	}
	if c.SessionToken.IsSet() && !hasKey {
		errs = append(errs, errors.New("session_token: only with access_key_id and secret_access_key"))
	}
	for _, e := range []struct{ key, url string }{
		{"endpoints.ec2", c.Endpoints.EC2}, {"endpoints.ebs", c.Endpoints.EBS}, {"endpoints.s3", c.Endpoints.S3},
	} {
		if e.url == "" {
			continue
		}
		if _, err := checkEndpoint(e.url); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.key, err))
		}
	}
	return errors.Join(errs...)
}

// checkEndpoint accepts an absolute http(s) URL of a service endpoint
// without credentials, query or fragment.
func checkEndpoint(raw string) (*url.URL, error) {
	// The guard's messages quote a URL it cannot parse, and a mistyped
	// endpoint may hold a credential: those are refused here unquoted.
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Opaque != "":
		return nil, errors.New("must be an absolute http:// or https:// URL (it does not parse; not quoted, it may hold a credential)")
	case u.User != nil:
		return nil, errors.New("must not contain credentials")
	}
	u, err = endpointGuard.CheckURL(raw)
	if err != nil {
		return nil, err
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("must not have a query or fragment")
	}
	return u, nil
}
