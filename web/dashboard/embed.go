package dashboard

import (
	"embed"
	"io/fs"
)

// all: keeps files whose names start with "." or "_" (Vite may emit them).
//
//go:embed all:dist
var dist embed.FS

// FS returns the built dashboard, index.html at its root.
func FS() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // "dist" is a valid path: fs.Sub cannot fail on it
	}
	return sub
}
