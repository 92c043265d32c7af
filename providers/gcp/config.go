package gcp

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/hypersdk/hypersdk/config"
	"github.com/hypersdk/hypersdk/internal/netguard"
)

// DefaultBuilderImage is the image export builder `gcloud compute images
// export` runs (gcloud picks a regional Artifact Registry copy when one
// exists; builder_image selects one).
const DefaultBuilderImage = "gcr.io/compute-image-import/gce_vm_image_export:release"

// Config is the settings of one Google Cloud project: an item of
// `providers:` with type gcp.
//
//	providers:
//	  - name: gcp1
//	    type: gcp
//	    project: my-project
//	    zones: [europe-west1-b, europe-west1-c]
//	    staging_bucket: my-export-staging        # in the zones' region
//	    staging_prefix: hypersdk                 # objects go to <prefix>/<job id>/
//	    credentials_file: /etc/hypersdk/sa.json  # or credentials_json: {env: GCP_KEY};
//	                                             #   neither: Application Default Credentials
//	    builder_image: gcr.io/compute-image-import/gce_vm_image_export:release
//	    network: default                         # the builder's VM network / subnet
//	    subnet: ""
//	    endpoints: {compute: URL, cloudbuild: URL, storage: URL/storage/v1/}  # tests
type Config struct {
	Project string   `yaml:"project"`
	Zones   []string `yaml:"zones"`
	// StagingBucket receives the builder's images, logs and scratch
	// files, all beneath StagingPrefix/<job id>/, removed when the job
	// ends.
	StagingBucket string `yaml:"staging_bucket"`
	StagingPrefix string `yaml:"staging_prefix"`
	// CredentialsFile is a service-account key file; CredentialsJSON the
	// same key inline (a config.Secret). Neither: Application Default
	// Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC, the
	// metadata server).
	CredentialsFile string        `yaml:"credentials_file"`
	CredentialsJSON config.Secret `yaml:"credentials_json"`
	// The staging image is always the builder's default, a gzipped tar
	// of disk.raw: it is never larger on the wire than the raw disk
	// (zeros compress to nothing), and the builder's other formats are
	// qemu-img's layouts (a monolithicSparse vmdk) that cannot be decoded
	// while they stream. The export's disk format is chosen per job.
	BuilderImage string    `yaml:"builder_image"`
	Network      string    `yaml:"network"`
	Subnet       string    `yaml:"subnet"`
	Endpoints    Endpoints `yaml:"endpoints"`
}

// Endpoints override the services' endpoints (a Private Service Connect
// endpoint, the test server). Empty means Google's own.
type Endpoints struct {
	Compute    string `yaml:"compute"`
	CloudBuild string `yaml:"cloudbuild"`
	// Storage is the JSON API's base, ending in /storage/v1/.
	Storage string `yaml:"storage"`
}

// DefaultStagingPrefix is the staging prefix when none is set.
const DefaultStagingPrefix = "hypersdk"

// endpointGuard checks endpoint URLs with the project's SSRF guard, with
// the trust the AWS provider gives its endpoints: set by the operator in
// the configuration file, never through the API; private addresses are
// what Private Service Connect endpoints resolve to.
var endpointGuard = netguard.Guard{AllowPrivate: true}

var (
	projectPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$|^[a-z][a-z0-9.-]*:[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	zonePattern    = regexp.MustCompile(`^[a-z]+-[a-z]+[0-9]+-[a-z]$`)
	bucketPattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$`)
	prefixPattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
	namePattern    = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)
)

// Decode is the configuration decoder of type gcp: strict, every problem
// with its key and line.
func Decode(s *config.ProviderSettings) (*Config, error) {
	var c Config
	if err := s.Decode(&c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks the settings; each problem names its key. It never
// quotes a credential.
func (c *Config) Validate() error {
	var errs []error
	switch {
	case c.Project == "":
		errs = append(errs, errors.New("project: required (the project id, e.g. my-project)"))
	case !projectPattern.MatchString(c.Project):
		errs = append(errs, fmt.Errorf("project: %q is not a project id (6-30 lower-case letters, digits and hyphens)", c.Project))
	}
	if len(c.Zones) == 0 {
		errs = append(errs, errors.New("zones: at least one zone is required (e.g. [europe-west1-b])"))
	}
	seen := map[string]bool{}
	for i, z := range c.Zones {
		switch {
		case !zonePattern.MatchString(z):
			errs = append(errs, fmt.Errorf("zones[%d]: %q is not a zone name such as europe-west1-b", i, z))
		case seen[z]:
			errs = append(errs, fmt.Errorf("zones[%d]: %q is listed twice", i, z))
		}
		seen[z] = true
	}
	switch {
	case c.StagingBucket == "":
		errs = append(errs, errors.New("staging_bucket: required (the bucket the image export build writes to)"))
	case strings.HasPrefix(c.StagingBucket, "gs://") || !bucketPattern.MatchString(c.StagingBucket):
		errs = append(errs, fmt.Errorf("staging_bucket: %q is not a bucket name (no gs://, 3-63 lower-case letters, digits, - _ .)", c.StagingBucket))
	}
	if p := c.StagingPrefix; p != "" && (!prefixPattern.MatchString(p) || strings.Contains(p, "//") || strings.Contains(p, "..")) {
		errs = append(errs, fmt.Errorf("staging_prefix: %q is not an object name prefix (letters, digits, . _ - /; no .., no //)", p))
	}
	if c.CredentialsFile != "" && c.CredentialsJSON.IsSet() {
		errs = append(errs, errors.New("credentials_json: set either credentials_file or credentials_json, not both"))
	}
	if c.BuilderImage != "" && (strings.ContainsAny(c.BuilderImage, " \t\n") || !strings.Contains(c.BuilderImage, BuilderExecutable)) {
		errs = append(errs, fmt.Errorf("builder_image: %q is not an image of the %s builder", c.BuilderImage, BuilderExecutable))
	}
	for _, n := range []struct{ key, v string }{{"network", c.Network}, {"subnet", c.Subnet}} {
		if n.v != "" && !namePattern.MatchString(n.v) {
			errs = append(errs, fmt.Errorf("%s: %q is not a resource name", n.key, n.v))
		}
	}
	for _, e := range []struct{ key, url string }{
		{"endpoints.compute", c.Endpoints.Compute}, {"endpoints.cloudbuild", c.Endpoints.CloudBuild}, {"endpoints.storage", c.Endpoints.Storage},
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

// prefix is the staging prefix without slashes at its ends.
func (c *Config) prefix() string {
	if p := strings.Trim(c.StagingPrefix, "/"); p != "" {
		return p
	}
	return DefaultStagingPrefix
}

func (c *Config) builder() string {
	if c.BuilderImage != "" {
		return c.BuilderImage
	}
	return DefaultBuilderImage
}

// checkEndpoint accepts an absolute http(s) URL without credentials, query
// or fragment.
func checkEndpoint(raw string) (*url.URL, error) {
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
