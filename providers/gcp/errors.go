package gcp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"cloud.google.com/go/auth"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/googleapi"

	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/transfer"
)

// httpCode returns the HTTP status of the answer that failed err, 0 when
// no answer came.
func httpCode(err error) int {
	var ae *apierror.APIError
	if errors.As(err, &ae) && ae.HTTPCode() > 0 {
		return ae.HTTPCode()
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}

func isNotFound(err error) bool { return httpCode(err) == http.StatusNotFound }

// permissionPattern finds the permission a 403 names ("Required
// 'compute.snapshots.create' permission for …", "… does not have
// storage.objects.list access to …").
var permissionPattern = regexp.MustCompile(`'?\b((?:compute|storage|cloudbuild|iam)\.[a-zA-Z]+\.[a-zA-Z]+)\b'?`)

// roleFor names the predefined role that grants a permission to the
// account HyperSDK runs as.
func roleFor(permission string) string {
	switch {
	case strings.HasPrefix(permission, "compute.instances."), strings.HasPrefix(permission, "compute.machineTypes."),
		strings.HasPrefix(permission, "compute.zones."), permission == "compute.disks.get", permission == "compute.disks.list":
		return "roles/compute.viewer"
	case strings.HasPrefix(permission, "compute."):
		return "roles/compute.storageAdmin"
	case strings.HasPrefix(permission, "storage."):
		return "roles/storage.objectAdmin on the staging bucket"
	case strings.HasPrefix(permission, "cloudbuild."):
		return "roles/cloudbuild.builds.editor"
	case permission == "iam.serviceAccounts.actAs":
		return "roles/iam.serviceAccountUser"
	}
	return ""
}

// apiError wraps a failed call with what was being done: rejected
// credentials wrap providers.ErrAuth, a refused permission names the role
// that grants it (permanent), throttling wraps providers.ErrThrottled.
func (p *Provider) apiError(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("gcp %s: %s: %w", p.name, what, err)
	}
	err = redact(err)
	var tokenErr *auth.Error
	if errors.As(err, &tokenErr) {
		// The token endpoint refused the key (revoked, deleted, wrong
		// project): no call can succeed.
		return fmt.Errorf("gcp %s: %s: the credentials were refused: %w: %w", p.name, what, providers.ErrAuth, err)
	}
	switch code := httpCode(err); code {
	case http.StatusUnauthorized:
		return fmt.Errorf("gcp %s: %s: %w: %w", p.name, what, providers.ErrAuth, err)
	case http.StatusForbidden:
		hint := "the account HyperSDK runs as lacks a permission"
		if m := permissionPattern.FindStringSubmatch(err.Error()); m != nil {
			hint = fmt.Sprintf("the account HyperSDK runs as lacks %s", m[1])
			if role := roleFor(m[1]); role != "" {
				hint += "; grant it " + role
			}
		}
		return providers.Permanent(fmt.Errorf("gcp %s: %s: %s: %w", p.name, what, hint, err))
	case http.StatusTooManyRequests:
		return fmt.Errorf("gcp %s: %s: %w: %w", p.name, what, providers.ErrThrottled, err)
	case http.StatusBadRequest, http.StatusConflict, http.StatusPreconditionFailed:
		return providers.Permanent(fmt.Errorf("gcp %s: %s: %w", p.name, what, err))
	}
	return fmt.Errorf("gcp %s: %s: %w", p.name, what, err)
}

// redact removes query strings from URLs in err's text (a storage URL
// never carries a secret in its query here, but a redirect might).
func redact(err error) error {
	if s := err.Error(); s != transfer.RedactURLs(s) {
		return &redacted{msg: transfer.RedactURLs(s), err: err}
	}
	return err
}

type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

// The image export builder's own error lines, as its log shows them.
var (
	stepPrefix    = regexp.MustCompile(`^(Step #\d+(?: - "[^"]*")?: )`)
	privacyMarker = strings.NewReplacer("[Privacy-> ", "", " <-Privacy]", "", "[Privacy->", "", "<-Privacy]", "")
	genericStep   = regexp.MustCompile(`^ERROR: build step \d+ .* failed: step exited with non-zero status`)
)

// builderErrorLine picks the line of a build log that says why the
// builder failed: the last line of the builder's ([image-export],
// [Daisy], GCEExport) that reports an error, else the last ERROR line.
func builderErrorLine(log string) string {
	var best, fallback string
	for line := range strings.SplitSeq(log, "\n") {
		line = strings.TrimSpace(stepPrefix.ReplaceAllString(strings.TrimSpace(line), ""))
		if line == "" {
			continue
		}
		l := strings.ToLower(line)
		switch {
		case genericStep.MatchString(line):
			fallback = line
		case strings.Contains(line, "ExportFailed:") || strings.Contains(l, "error"):
			if strings.Contains(line, "[image-export]") || strings.Contains(line, "[Daisy]") || strings.Contains(line, "GCEExport") ||
				strings.Contains(line, "ExportFailed:") || strings.HasPrefix(line, "ERROR") {
				best = line
			}
		}
	}
	if best == "" {
		best = fallback
	}
	return privacyMarker.Replace(best)
}

// builderHint says which service account lacks which roles when the
// builder's error line is a permission refusal.
func builderHint(line, projectNumber string) string {
	l := strings.ToLower(line)
	cb, ce := "the Cloud Build service account", "the Compute Engine default service account"
	if projectNumber != "" {
		cb += " (" + projectNumber + "@cloudbuild.gserviceaccount.com)"
		ce += " (" + projectNumber + "-compute@developer.gserviceaccount.com)"
	}
	switch {
	case strings.Contains(l, "compute engine service account") || (strings.Contains(l, "storage.objects.") && strings.Contains(l, "permission")):
		return ce + " needs roles/compute.storageAdmin and roles/storage.objectAdmin"
	case strings.Contains(l, "iam.serviceaccounts") || strings.Contains(l, "required 'compute.") ||
		(strings.Contains(l, "403") && strings.Contains(l, "compute")):
		return cb + " needs roles/compute.admin, roles/iam.serviceAccountUser and roles/iam.serviceAccountTokenCreator"
	}
	return ""
}
