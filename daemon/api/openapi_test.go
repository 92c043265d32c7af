package api_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/daemon/store/storetest"
)

// updateOpenAPI rewrites the committed document from the running server.
var updateOpenAPI = flag.Bool("update-openapi", false, "rewrite apitypes/openapi.json from the server")

// openAPIFile is the committed document the dashboard generates its
// TypeScript types from.
var openAPIFile = filepath.Join("..", "..", "apitypes", "openapi.json")

const openAPIUpdateCommand = "go test ./daemon/api -run TestOpenAPIDocumentIsCommitted -update-openapi"

// The committed apitypes/openapi.json is exactly what the server serves
// (with every optional route group enabled), so clients generated from it
// cannot drift from the routes.
func TestOpenAPIDocumentIsCommitted(t *testing.T) {
	ts := newTestServer(t, storetest.Open(t, store.SQLite))
	r := ts.do(t, "GET", "/api/v1/openapi.json", viewerToken, nil)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	got := canonicalOpenAPI(t, r.body)
	if *updateOpenAPI {
		if err := os.WriteFile(openAPIFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(openAPIFile)
	if err != nil {
		t.Fatalf("%v: run %s to create it", err, openAPIUpdateCommand)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the document the server serves: run %s to update it", openAPIFile, openAPIUpdateCommand)
	}
}

// canonicalOpenAPI indents the document with sorted keys and replaces the
// build's version, so the file changes only when the API does.
func canonicalOpenAPI(t *testing.T, b []byte) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	info, _ := doc["info"].(map[string]any)
	if info == nil {
		t.Fatal("OpenAPI document without info")
	}
	info["version"] = "v1"
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
