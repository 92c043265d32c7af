package aws

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

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
//	    export_task:                                  # optional: enables --method export-task
//	      bucket: my-exports                          #   the S3 bucket VM Export writes to (required)
//	      prefix: hypersdk/                           #   key prefix (default hypersdk/)
//	      disk_image_format: vmdk                     #   vmdk (default), raw or vhd
//	      container: ""                               #   "" (default: the disk image alone) or ova
//	      delete_object: true                         #   delete the object once exported (default false)
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
	// ExportTask configures the export-task method (an EC2 instance export
	// task writing to S3); without a bucket that method is refused.
	ExportTask ExportTaskConfig `yaml:"export_task"`
}

// ExportTaskConfig is where and how an export task writes the instance's
// image (CreateInstanceExportTask's ExportToS3 and TargetEnvironment).
type ExportTaskConfig struct {
	// Bucket is the S3 bucket VM Export writes to: in the same account and
	// region, unencrypted or SSE-S3 (not SSE-KMS), with the ACL grant VM
	// Export needs (see the README). Required for the method.
	Bucket string `yaml:"bucket"`
	// Prefix starts every object's key (the key is prefix + task id + "."
	// + format, as AWS names it); "" means DefaultExportPrefix. The
	// provider reads and deletes objects under it only.
	Prefix string `yaml:"prefix"`
	// DiskImageFormat is vmdk (default: streamOptimized, which the pipeline
	// passes through or decodes as it streams), raw or vhd.
	DiskImageFormat string `yaml:"disk_image_format"`
	// Container is "" (default: the disk image alone) or ova (a tar of an
	// .ovf and the disk image; the pipeline reads the disk image out of it
	// in place and builds its own descriptor, so ova only costs AWS's
	// packing).
	Container string `yaml:"container"`
	// DeleteObject deletes the task's object once the export has ended,
	// however it ended (it needs s3:DeleteObject). Off by default: the
	// bucket is the owner's, and the object a copy they may keep.
	DeleteObject bool `yaml:"delete_object"`
	// TargetEnvironment is what AWS prepares the image for: vmware,
	// citrix or microsoft (default: microsoft for vhd, vmware otherwise).
	TargetEnvironment string `yaml:"target_environment"`
}

// DefaultExportPrefix is the key prefix of export objects when the
// configuration sets none.
const DefaultExportPrefix = "hypersdk/"

// prefix is the configured key prefix or the default.
func (e *ExportTaskConfig) prefix() string {
	if e.Prefix == "" {
		return DefaultExportPrefix
	}
	return e.Prefix
}

// diskFormat is the disk image format, lower case, default vmdk.
func (e *ExportTaskConfig) diskFormat() string {
	if e.DiskImageFormat == "" {
		return "vmdk"
	}
	return strings.ToLower(e.DiskImageFormat)
}

func (e *ExportTaskConfig) targetEnvironment() string {
	switch {
	case e.TargetEnvironment != "":
		return strings.ToLower(e.TargetEnvironment)
	case e.diskFormat() == "vhd":
		return "microsoft"
	}
	return "vmware"
}

// extension is the object's extension as AWS names it: ova for an OVA,
// else the disk image format.
func (e *ExportTaskConfig) extension() string {
	if e.Container != "" {
		return strings.ToLower(e.Container)
	}
	return e.diskFormat()
}

// bucketPattern is S3's naming rule for general purpose buckets: 3–63
// lower-case letters, digits, dots and hyphens, starting and ending with a
// letter or digit.
var bucketPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// validate checks the export_task block; each problem names its key.
func (e *ExportTaskConfig) validate() []error {
	var errs []error
	set := e.Prefix != "" || e.DiskImageFormat != "" || e.Container != "" || e.DeleteObject || e.TargetEnvironment != ""
	switch {
	case e.Bucket == "" && set:
		errs = append(errs, errors.New("export_task.bucket: required with the other export_task settings (the S3 bucket VM Export writes to)"))
	case e.Bucket != "" && (!bucketPattern.MatchString(e.Bucket) || strings.Contains(e.Bucket, "..") || net.ParseIP(e.Bucket) != nil):
		errs = append(errs, fmt.Errorf("export_task.bucket: %q is not an S3 bucket name (3-63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit)", e.Bucket))
	}
	if p := e.prefix(); len(p) > 512 || strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		errs = append(errs, errors.New("export_task.prefix: at most 512 bytes, without control characters"))
	}
	if f := e.diskFormat(); f != "vmdk" && f != "raw" && f != "vhd" {
		errs = append(errs, fmt.Errorf("export_task.disk_image_format: must be vmdk, raw or vhd, got %q", e.DiskImageFormat))
	}
	if c := strings.ToLower(e.Container); c != "" && c != "ova" {
		errs = append(errs, fmt.Errorf(`export_task.container: must be ova or "" (the disk image alone), got %q`, e.Container))
	}
	if t := e.targetEnvironment(); t != "vmware" && t != "citrix" && t != "microsoft" {
		errs = append(errs, fmt.Errorf("export_task.target_environment: must be vmware, citrix or microsoft, got %q", e.TargetEnvironment))
	}
	return errs
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
	errs = append(errs, c.ExportTask.validate()...)
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

// String describes the settings in one line (they hold no secret).
func (e ExportTaskConfig) String() string {
	if e.Bucket == "" {
		return "export_task: off"
	}
	return fmt.Sprintf("export_task: s3://%s/%s, %s, container %q, target %s, delete_object %t",
		e.Bucket, e.prefix(), e.diskFormat(), e.Container, e.targetEnvironment(), e.DeleteObject)
}
