package awsfake

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// authFailure says why a request's signature was refused. kind selects the
// error each protocol answers with; message is safe to show (it never holds
// the secret, nor the signature).
type authFailure struct {
	kind    authKind
	message string
}

type authKind int

const (
	authMissing authKind = iota // no Authorization header
	authBadKey                  // unknown access key id
	authBadSig                  // signature does not match, or malformed
	authExpired                 // X-Amz-Date too far from now
)

const (
	sigAlgorithm  = "AWS4-HMAC-SHA256"
	amzDateFormat = "20060102T150405Z"
	// maxClockSkew is AWS's tolerance between the signing time and now.
	maxClockSkew = 15 * time.Minute
)

// verifySignature checks r's SigV4 Authorization header by signing the same
// request again with the configured secret, for service in the server's
// region, and comparing signatures in constant time.
func (s *Server) verifySignature(r *http.Request, body []byte, service string) *authFailure {
	authz := r.Header.Get("Authorization")
	if authz == "" {
		return &authFailure{authMissing, "Request is missing Authentication Token"}
	}
	parsed, ok := parseAuthorization(authz)
	if !ok {
		return &authFailure{authBadSig, "Authorization header is not a well-formed AWS4-HMAC-SHA256 signature"}
	}
	scope := strings.Split(parsed.credential, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return &authFailure{authBadSig, "Credential scope is malformed"}
	}
	if scope[0] != s.opts.AccessKeyID {
		return &authFailure{authBadKey, "The security token included in the request is invalid."}
	}
	if scope[2] != s.opts.Region || scope[3] != service {
		return &authFailure{authBadSig, "Credential should be scoped to region '" + s.opts.Region + "' and service '" + service + "'"}
	}
	signingTime, err := time.Parse(amzDateFormat, r.Header.Get("X-Amz-Date"))
	if err != nil || signingTime.Format("20060102") != scope[1] {
		return &authFailure{authBadSig, "X-Amz-Date is missing, malformed or not the date of the credential scope"}
	}
	if skew := time.Since(signingTime); skew > maxClockSkew || skew < -maxClockSkew {
		return &authFailure{authExpired, "Signature expired: the signing time is more than 15 minutes from the server time"}
	}

	// Rebuild the request from what was signed only: the signer signs every
	// header it is given that its rules allow, so unsigned headers must go.
	signed := map[string]bool{}
	for _, h := range strings.Split(parsed.signedHeaders, ";") {
		signed[h] = true
	}
	if !signed["host"] {
		return &authFailure{authBadSig, "The host header must be signed"}
	}
	re, err := http.NewRequestWithContext(context.Background(), r.Method, r.URL.String(), nil)
	if err != nil {
		return &authFailure{authBadSig, "request URL cannot be re-signed"}
	}
	re.Host = r.Host
	re.URL.Host = r.Host
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		if signed[lk] && lk != "host" && lk != "content-length" && lk != "authorization" {
			re.Header[k] = vs
		}
	}
	if signed["content-length"] {
		re.ContentLength = r.ContentLength
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: s.opts.AccessKeyID, SecretAccessKey: s.opts.SecretAccessKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, re, hex.EncodeToString(sum[:]), service, s.opts.Region, signingTime); err != nil {
		return &authFailure{authBadSig, "request cannot be re-signed"}
	}
	want, ok := parseAuthorization(re.Header.Get("Authorization"))
	if !ok || want.signedHeaders != parsed.signedHeaders ||
		subtle.ConstantTimeCompare([]byte(want.signature), []byte(parsed.signature)) != 1 {
		return &authFailure{authBadSig, "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."}
	}
	return nil
}

type authorization struct {
	credential, signedHeaders, signature string
}

// parseAuthorization splits "AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
// Signature=…".
func parseAuthorization(h string) (authorization, bool) {
	alg, rest, ok := strings.Cut(h, " ")
	if !ok || alg != sigAlgorithm {
		return authorization{}, false
	}
	var a authorization
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return authorization{}, false
		}
		switch k {
		case "Credential":
			a.credential = v
		case "SignedHeaders":
			a.signedHeaders = v
		case "Signature":
			a.signature = v
		}
	}
	return a, a.credential != "" && a.signedHeaders != "" && a.signature != ""
}
