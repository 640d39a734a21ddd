package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// indexFile is the page served at "/"; the other assets are served under
// assetsPrefix by their file names.
const (
	indexFile    = "index.html"
	assetsPrefix = "/assets/"
)

// contentSecurityPolicy lets the page load only its own script, style and
// images, and connect only to its own origin (the JSON-RPC endpoint, over
// HTTP and WebSocket). Inline script and style are refused, which is what
// makes a rendering mistake with user text harmless.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// contentTypes are the types of the asset kinds, fixed here rather than
// taken from the host's MIME tables, which differ between systems.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// asset is one embedded file, ready to serve.
type asset struct {
	name  string
	body  []byte
	ctype string
	etag  string
}

// handler serves the embedded assets.
type handler struct {
	files map[string]asset
}

// Handler returns the web UI's HTTP handler: the page at "/" and its
// assets under "/assets/", for GET and HEAD. Other paths get 404 and other
// methods 405. Responses carry an ETag and ask browsers to revalidate, so
// a node upgraded in place never serves a stale script.
func Handler() http.Handler {
	h, err := newHandler(assets)
	if err != nil {
		// The assets are compiled in; a missing or unknown file is a
		// build mistake that the package's tests catch.
		panic(fmt.Sprintf("web: %v", err))
	}
	return h
}

func newHandler(fsys fs.FS) (*handler, error) {
	h := &handler{files: make(map[string]asset)}
	err := fs.WalkDir(fsys, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ctype, ok := contentTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("asset %s: no content type for %q files", p, path.Ext(p))
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		name := strings.TrimPrefix(p, "assets/")
		h.files[name] = asset{name: name, body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, ok := h.files[indexFile]; !ok {
		return nil, fmt.Errorf("asset %s is missing", indexFile)
	}
	return h, nil
}

// ServeHTTP serves one asset.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var name string
	switch {
	case r.URL.Path == "/":
		name = indexFile
	case strings.HasPrefix(r.URL.Path, assetsPrefix):
		name = strings.TrimPrefix(r.URL.Path, assetsPrefix)
	}
	a, ok := h.files[name]
	if name == "" || !ok {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.ctype)
	hd.Set("ETag", a.etag)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
}
