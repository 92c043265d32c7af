package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/config"
)

// Principal is an authenticated caller: the token's name and role. The
// token itself is never kept beyond the lookup.
type Principal struct {
	Name string
	Role string
}

var roleRank = map[string]int{config.RoleViewer: 1, config.RoleOperator: 2, config.RoleAdmin: 3}

// Can reports whether p's role includes role.
func (p Principal) Can(role string) bool { return roleRank[p.Role] >= roleRank[role] }

// Tokens authenticates bearer tokens. It keeps SHA-256 digests only, so a
// heap dump does not hand out credentials and lookups do not compare the
// secret byte by byte.
type Tokens struct {
	byDigest map[[32]byte]Principal
}

// NewTokens builds the token table from configuration.
func NewTokens(tokens []config.Token) (*Tokens, error) {
	t := &Tokens{byDigest: map[[32]byte]Principal{}}
	for _, tok := range tokens {
		if err := t.Add(tok.Name, tok.Role, tok.Token.Reveal()); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Add registers a token.
func (t *Tokens) Add(name, role, token string) error {
	if _, ok := roleRank[role]; !ok {
		return fmt.Errorf("token %s: unknown role %q", name, role)
	}
	d := sha256.Sum256([]byte(token))
	if _, dup := t.byDigest[d]; dup {
		return fmt.Errorf("token %s: the same token is configured twice", name)
	}
	t.byDigest[d] = Principal{Name: name, Role: role}
	return nil
}

// Len is the number of tokens.
func (t *Tokens) Len() int { return len(t.byDigest) }

// Authenticate returns the principal for an Authorization header value.
func (t *Tokens) Authenticate(header string) (Principal, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return Principal{}, false
	}
	p, ok := t.byDigest[sha256.Sum256([]byte(strings.TrimSpace(token)))]
	return p, ok
}

// EnsureAdminToken returns the admin token stored in dataDir, generating
// one (mode 0600) on first use. created reports whether it was generated.
func EnsureAdminToken(dataDir string) (token, path string, created bool, err error) {
	path = filepath.Join(dataDir, apitypes.AdminTokenFile)
	if b, err := os.ReadFile(path); err == nil {
		if tok := strings.TrimSpace(string(b)); len(tok) >= 16 {
			if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
				return "", path, false, fmt.Errorf("%s is readable by other users (mode %v); chmod 600 it", path, fi.Mode().Perm())
			}
			return tok, path, false, nil
		}
		return "", path, false, fmt.Errorf("%s is empty or too short; delete it to generate a new token", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", path, false, err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", path, false, err
	}
	token = "hsk_" + base64.RawURLEncoding.EncodeToString(b[:])
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", path, false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", path, false, err
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		return "", path, false, err
	}
	if err := f.Close(); err != nil {
		return "", path, false, err
	}
	return token, path, true, nil
}

type principalKey struct{}

func withPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the caller of a request.
func PrincipalFrom(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey{}).(Principal)
	return p
}
