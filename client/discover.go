package client

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hypersdk/hypersdk/apitypes"
)

// EndpointFile is the file in a daemon's data directory holding the base
// URL of its API.
const EndpointFile = apitypes.EndpointFile

// AdminTokenFile is the file in a daemon's data directory holding the
// admin token the daemon generated because none was configured.
const AdminTokenFile = apitypes.AdminTokenFile

// ReadEndpoint returns the API base URL recorded in dataDir, or "" (and no
// error) when the daemon has not recorded one there.
func ReadEndpoint(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, EndpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// ReadToken reads a token file: the token is its content without
// surrounding whitespace. An empty file is an error.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("%s holds more than one token", path)
	}
	return tok, nil
}
