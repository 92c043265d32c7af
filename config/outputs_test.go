package config

import (
	"fmt"
	"strings"
	"testing"
)

func TestOutputTargetsValidated(t *testing.T) {
	cfg, err := parse([]byte(`output_targets:
  - url: ftp://bucket/
  - url: s3://user:pw@bucket/
  - url: s3://bucket/
    endpoint: http://127.0.0.1:9000
    access_key_id: AKIA
  - url: azblob://account/
  - url: s3://fine/
    endpoint: http://127.0.0.1:9000
    allow_private: true
    access_key_id: AKIA
    secret_access_key: s3cret
`))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	if err == nil {
		t.Fatal("invalid targets accepted")
	}
	for _, want := range []string{
		`output_targets[0].url: must start with s3://, gs:// or azblob://`,
		`output_targets[1].url: must name a bucket (azblob: an account) and carry no credentials`,
		`output_targets[2].endpoint:`, `output_targets[2].allow_private`,
		`output_targets[2].secret_access_key: required with access_key_id`,
		`output_targets[3].account_key: required for azblob targets`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "output_targets[4]") || strings.Contains(err.Error(), "pw") {
		t.Errorf("error %q", err)
	}
	if s := fmt.Sprintf("%v %+v", cfg.OutputTargets[4], cfg.OutputTargets[4]); strings.Contains(s, "s3cret") {
		t.Errorf("the secret prints: %s", s)
	}
}
