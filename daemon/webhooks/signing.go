package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// SecretPrefix starts every signing secret (Standard Webhooks).
const SecretPrefix = "whsec_"

// NewSecret returns a fresh secret of 32 random bytes.
func NewSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// secretKey decodes a whsec_ secret into its HMAC key.
func secretKey(secret string) ([]byte, error) {
	raw, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("a signing secret starts with %s", SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, fmt.Errorf("a signing secret is %s followed by standard base64", SecretPrefix)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("a signing secret holds 24 to 64 bytes, this one %d", len(key))
	}
	return key, nil
}

// ValidateSecret checks a user-supplied secret.
func ValidateSecret(secret string) error {
	_, err := secretKey(secret)
	return err
}

// Sign returns the webhook-signature value for one message: "v1,<base64
// HMAC-SHA256 of id.timestamp.body>" for each secret, space-separated (two
// while a rotated-out secret is still honoured).
func Sign(id string, timestamp int64, body []byte, secrets ...string) (string, error) {
	var sigs []string
	for _, s := range secrets {
		key, err := secretKey(s)
		if err != nil {
			return "", err
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
		mac.Write([]byte{'.'})
		mac.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(sigs, " "), nil
}

// secretPrefix shows enough of a secret to tell two apart, never enough to
// use it.
func secretPrefix(secret string) string {
	n := len(SecretPrefix) + 4
	if len(secret) <= n {
		return SecretPrefix + "…"
	}
	return secret[:n] + "…"
}
