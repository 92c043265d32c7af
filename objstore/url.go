package objstore

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/hypersdk/hypersdk/internal/fielderr"
	"github.com/hypersdk/hypersdk/providers"
)

// Schemes are the output URL schemes object storage answers.
var Schemes = []string{"s3", "gs", "azblob"}

// IsURL reports whether an output names object storage (a scheme of
// Schemes) rather than a local directory.
func IsURL(output string) bool {
	for _, s := range Schemes {
		if strings.HasPrefix(output, s+"://") {
			return true
		}
	}
	return false
}

// URL is a parsed output URL: s3://bucket/prefix/, gs://bucket/prefix/,
// azblob://account/container/prefix/.
type URL struct {
	Scheme string
	// Bucket is the bucket, or for azblob the account and container
	// ("account/container").
	Bucket string
	// Prefix is the key prefix, empty or ending in "/".
	Prefix string
}

func (u URL) String() string { return u.Scheme + "://" + u.Bucket + "/" + u.Prefix }

// ParseURL parses an output URL; field names the request field in its
// errors.
func ParseURL(field, raw string) (URL, error) {
	var problems fielderr.List
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		problems.Addf(field, "not a URL: %v", stripURL(err))
	case !IsURL(raw):
		problems.Addf(field, "must start with %s://", strings.Join(Schemes, "://, "))
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		// Credentials belong in the configuration (output_targets), never
		// in a URL that is stored with the job and shown by the API.
		problems.Addf(field, "must not carry credentials, a query or a fragment: configure the target under output_targets")
	case u.Host == "":
		problems.Addf(field, "names no bucket")
	}
	if len(problems) > 0 {
		return URL{}, problems.Err(providers.ErrInvalidArgument)
	}
	out := URL{Scheme: u.Scheme, Bucket: u.Host}
	path := strings.TrimPrefix(u.Path, "/")
	if u.Scheme == "azblob" {
		container, rest, _ := strings.Cut(path, "/")
		if container == "" {
			problems.Addf(field, "azblob://account/container/prefix/: names no container")
			return URL{}, problems.Err(providers.ErrInvalidArgument)
		}
		out.Bucket += "/" + container
		path = rest
	}
	for _, seg := range strings.Split(strings.TrimSuffix(path, "/"), "/") {
		if path != "" && (seg == "" || seg == "." || seg == "..") {
			problems.Addf(field, "prefix %q has an empty, . or .. segment", path)
			return URL{}, problems.Err(providers.ErrInvalidArgument)
		}
	}
	if path != "" && !strings.HasSuffix(path, "/") {
		path += "/"
	}
	out.Prefix = path
	return out, nil
}

// stripURL drops the URL from a url.Parse error: it may hold a secret.
func stripURL(err error) error {
	if ue, ok := err.(*url.Error); ok { //nolint:errorlint // url.Parse returns it unwrapped
		return ue.Err
	}
	return err
}

// Target is a configured destination: the outputs under URL (a bucket, a
// prefix of one) are written with its settings.
type Target struct {
	// Name identifies the target in messages.
	Name string
	// URL is the prefix it serves: "s3://bucket/", "s3://bucket/backups/".
	URL string
	// S3 reaches an s3:// target.
	S3 S3Config
	// GCS reaches a gs:// target.
	GCS GCSConfig
	// Azure reaches an azblob:// target.
	Azure AzureConfig
}

// Targets are the configured destinations.
type Targets []Target

// Match returns the target serving u: the longest URL that is a prefix of
// it.
func (ts Targets) Match(u URL) (Target, bool) {
	var best Target
	found := false
	s := u.String()
	for _, t := range ts {
		p, err := TargetPrefix("url", t.URL)
		if err != nil {
			continue
		}
		if strings.HasPrefix(s, p) && (!found || len(p) > len(best.URL)) {
			best, found = t, true
			best.URL = p
		}
	}
	return best, found
}

// TargetPrefix checks a target's URL and returns it as the prefix of the
// output URLs it serves: an output URL, or for azblob a whole account
// ("azblob://account/").
func TargetPrefix(field, raw string) (string, error) {
	if u, err := url.Parse(raw); err == nil && u.Scheme == "azblob" && u.Host != "" && strings.Trim(u.Path, "/") == "" &&
		u.User == nil && u.RawQuery == "" && u.Fragment == "" {
		return "azblob://" + u.Host + "/", nil
	}
	u, err := ParseURL(field, raw)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// Open returns the sink of the output URL raw (field names its request
// field), keeping its uploads' state in state.
func (ts Targets) Open(ctx context.Context, field, raw string, state *os.Root, log *slog.Logger) (*Sink, error) {
	u, err := ParseURL(field, raw)
	if err != nil {
		return nil, err
	}
	t, ok := ts.Match(u)
	if !ok {
		var problems fielderr.List
		problems.Addf(field, "no output target is configured for %s (output_targets in the daemon configuration)", u.Scheme+"://"+u.Bucket+"/")
		return nil, problems.Err(providers.ErrInvalidArgument)
	}
	switch u.Scheme {
	case "s3":
		return newSink(newS3(t.S3, u.Bucket), u.Prefix, state, log), nil
	case "gs":
		st, err := newGCS(ctx, t.GCS, u.Bucket)
		if err != nil {
			return nil, fmt.Errorf("output target %s: %w", t.Name, err)
		}
		return newSink(st, u.Prefix, state, log), nil
	case "azblob":
		account, containerName, _ := strings.Cut(u.Bucket, "/")
		st, err := newAzure(t.Azure, account, containerName)
		if err != nil {
			return nil, fmt.Errorf("output target %s: %w", t.Name, err)
		}
		return newSink(st, u.Prefix, state, log), nil
	default:
		var problems fielderr.List
		problems.Addf(field, "%s:// outputs are not supported yet", u.Scheme)
		return nil, problems.Err(providers.ErrUnsupported)
	}
}

// Check reports what is wrong with the output URL raw against the
// targets, without opening anything.
func (ts Targets) Check(field, raw string) error {
	u, err := ParseURL(field, raw)
	if err != nil {
		return err
	}
	if _, ok := ts.Match(u); !ok {
		var problems fielderr.List
		problems.Addf(field, "no output target is configured for %s (output_targets in the daemon configuration)", u.Scheme+"://"+u.Bucket+"/")
		return problems.Err(providers.ErrInvalidArgument)
	}
	return nil
}

// describe names a target in logs.
func (t Target) String() string { return fmt.Sprintf("%s (%s)", t.Name, t.URL) }
