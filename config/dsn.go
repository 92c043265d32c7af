package config

import (
	"errors"
	"net/url"
	"strings"
)

// dsnMask replaces a password in a redacted DSN (the mask url.URL.Redacted
// and pgx use, so every printed form looks alike).
const dsnMask = "xxxxx"

// RedactDSN returns a PostgreSQL connection string — a postgres:// URL or a
// libpq key/value string — with every password replaced by xxxxx: the
// userinfo password, password= and sslpassword= in the query or key/value
// list, quoted or not. It is the one place a DSN is made printable; every
// message, log line, status field and config check prints its result. A
// string it cannot parse is replaced whole rather than guessed at.
func RedactDSN(dsn string) string {
	if isURLDSN(dsn) {
		return redactURLDSN(dsn)
	}
	pairs, err := parseKeywordDSN(dsn)
	if err != nil {
		return "[unparsable key/value DSN]"
	}
	parts := make([]string, len(pairs))
	for i, p := range pairs {
		v := p.value
		if sensitiveDSNKey(p.key) {
			v = dsnMask
		}
		parts[i] = p.key + "=" + quoteDSNValue(v)
	}
	return strings.Join(parts, " ")
}

// checkDSN reports what is wrong with a database.url value without
// repeating the value (it may hold a password).
func checkDSN(dsn string) error {
	if isURLDSN(dsn) {
		if _, err := url.Parse(dsn); err != nil {
			return errors.New("is not a valid postgres:// URL (check the escaping of special characters)")
		}
		return nil
	}
	if strings.Contains(dsn, "://") {
		return errors.New("must be a postgres:// or postgresql:// URL or a key/value string (host=… dbname=…)")
	}
	if _, err := parseKeywordDSN(dsn); err != nil {
		return errors.New("is neither a postgres:// URL nor a valid key/value string: " + err.Error())
	}
	return nil
}

// isURLDSN follows libpq: a connection string is a URI exactly when it
// starts with one of these prefixes.
func isURLDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// sensitiveDSNKey over-matches on purpose (PASSWORD, sslpassword, a
// misspelt passwd): printing one harmless value as xxxxx costs nothing.
func sensitiveDSNKey(k string) bool {
	return strings.Contains(strings.ToLower(k), "pass")
}

func redactURLDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "[unparsable database URL]"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), dsnMask)
	}
	u.Fragment, u.RawFragment = "", ""
	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, part := range parts {
			k, _, _ := strings.Cut(part, "=")
			dk, err := url.QueryUnescape(k)
			// A part that does not decode, or carries a ';' (which Go's
			// query parser refuses), may hide a password: mask it.
			if err != nil || strings.Contains(part, ";") {
				parts[i] = dsnMask
				continue
			}
			if sensitiveDSNKey(dk) {
				parts[i] = k + "=" + dsnMask
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	// Not u.Redacted(): it masks the userinfo only and keeps the query.
	return u.String()
}

type dsnPair struct{ key, value string }

// parseKeywordDSN splits a libpq key/value connection string ("host=h
// password='a b'") the way libpq's conninfo_parse does: keywords of
// letters, digits and '_', optional spaces around '=', values unquoted up
// to the next space or in single quotes, with backslash escapes in both.
func parseKeywordDSN(s string) ([]dsnPair, error) {
	var out []dsnPair
	i := 0
	skipSpace := func() {
		for i < len(s) && isDSNSpace(s[i]) {
			i++
		}
	}
	for {
		skipSpace()
		if i >= len(s) {
			break
		}
		start := i
		for i < len(s) && isDSNKeyByte(s[i]) {
			i++
		}
		key := s[start:i]
		if key == "" {
			return nil, errors.New("expected a keyword such as host or dbname")
		}
		skipSpace()
		if i >= len(s) || s[i] != '=' {
			// Not naming the word: it may be half of an unquoted password.
			return nil, errors.New("a word is not followed by '=' (quote values with spaces: password='a b')")
		}
		i++
		skipSpace()
		var v strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					v.WriteByte(s[i+1])
					i += 2
					continue
				}
				i++
				if c == '\'' {
					closed = true
					break
				}
				v.WriteByte(c)
			}
			if !closed {
				return nil, errors.New("a quoted value has no closing quote")
			}
		} else {
			for i < len(s) && !isDSNSpace(s[i]) {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				v.WriteByte(s[i])
				i++
			}
		}
		out = append(out, dsnPair{key, v.String()})
	}
	if len(out) == 0 {
		return nil, errors.New("it is empty")
	}
	return out, nil
}

func isDSNSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isDSNKeyByte(c byte) bool {
	return c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

// quoteDSNValue writes a value back in key/value syntax.
func quoteDSNValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r\f\v'\\") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}
