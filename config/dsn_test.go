package config

import (
	"strings"
	"testing"
)

func TestRedactDSN(t *testing.T) {
	const secret = "S3cr3t-pw"
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:" + secret + "@db.example:5432/hs", "postgres://u:xxxxx@db.example:5432/hs"},
		{"postgresql://u@h/db?sslmode=require&password=" + secret, "postgresql://u@h/db?sslmode=require&password=xxxxx"},
		{"postgres://u@h/db?sslpassword=" + secret + "&PASSWORD=" + secret, "postgres://u@h/db?sslpassword=xxxxx&PASSWORD=xxxxx"},
		{"postgres://u@h/db?pass%77ord=" + secret, "postgres://u@h/db?pass%77ord=xxxxx"},
		{"postgres://u@h/db?a=1;password=" + secret, "postgres://u@h/db?xxxxx"},
		{"postgres://u@h/db#" + secret, "postgres://u@h/db"},
		{"postgres://u:" + secret + "@h:5432/db%zz", "[unparsable database URL]"},
		{"host=h user=u password=" + secret + " dbname=d", "host=h user=u password=xxxxx dbname=d"},
		{"host=h password = '" + secret + " with spaces' dbname=d", "host=h password=xxxxx dbname=d"},
		{`host=h password='it\'s ` + secret + `' sslpassword=` + secret, "host=h password=xxxxx sslpassword=xxxxx"},
		{"application_name='my app' password=" + secret, "application_name='my app' password=xxxxx"},
		{"host=h password='" + secret, "[unparsable key/value DSN]"},
		{"host=h " + secret, "[unparsable key/value DSN]"},
	} {
		got := RedactDSN(tc.in)
		if got != tc.want {
			t.Errorf("RedactDSN(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(got, secret) {
			t.Errorf("RedactDSN(%q) leaks the password: %q", tc.in, got)
		}
	}
}

func TestDatabaseURLValidation(t *testing.T) {
	const secret = "S3cr3t-pw"
	for _, dsn := range []string{
		"postgres://u:" + secret + "@h/db?sslmode=disable",
		"host=127.0.0.1 port=5432 user=postgres password='a " + secret + "' dbname=test",
	} {
		cfg := Default()
		cfg.Database.URL = NewSecret(dsn)
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", RedactDSN(dsn), err)
		}
	}
	for _, dsn := range []string{
		"mysql://u:" + secret + "@h/db",
		"host=h password='" + secret,
		"host=h password=two " + secret,
		"postgres://u:" + secret + "@h/db%zz",
		secret,
	} {
		cfg := Default()
		cfg.Database.URL = NewSecret(dsn)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "database.url") {
			t.Errorf("invalid DSN accepted or unnamed key: %v", err)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("validation error repeats the password: %v", err)
		}
	}
}
