package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The mutating admin endpoints cannot be reached from a web page in an operator's browser
// (a body-less POST needs no CORS preflight; DNS rebinding can make the page same-origin),
// and with a token only by its holder. Reads stay open.
func TestAdminGuard(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	cases := []struct {
		name, token, method, host, origin, auth string
		want                                    int
	}{
		{"loopback tool", "", "POST", "127.0.0.1:9100", "", "", http.StatusNoContent},
		{"localhost tool", "", "POST", "localhost:9100", "", "", http.StatusNoContent},
		{"web page", "", "POST", "127.0.0.1:9100", "http://evil.example", "", http.StatusForbidden},
		{"dns rebinding", "", "POST", "evil.example:9100", "", "", http.StatusForbidden},
		{"read from a page", "", "GET", "evil.example:9100", "http://evil.example", "", http.StatusNoContent},
		{"token missing", "0123456789abcdef", "POST", "10.0.0.1:9100", "", "", http.StatusUnauthorized},
		{"token wrong", "0123456789abcdef", "POST", "10.0.0.1:9100", "", "Bearer 0123456789abcdeX", http.StatusUnauthorized},
		{"token right", "0123456789abcdef", "POST", "10.0.0.1:9100", "", "Bearer 0123456789abcdef", http.StatusNoContent},
	}
	for _, c := range cases {
		req := httptest.NewRequest(c.method, "http://"+c.host+"/admin/partition?peers=2", nil)
		req.Host = c.host
		if c.origin != "" {
			req.Header.Set("Origin", c.origin)
		}
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		rec := httptest.NewRecorder()
		guardAdmin(ok, c.token).ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s: status %d, want %d", c.name, rec.Code, c.want)
		}
	}
}

// A bare port binds loopback; another host needs a token file with a real token.
func TestAdminAddressNeedsTokenOffLoopback(t *testing.T) {
	dir := t.TempDir()
	good, short := filepath.Join(dir, "good"), filepath.Join(dir, "short")
	if err := os.WriteFile(good, []byte("0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(short, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		addr, file, wantAddr, wantErr string
	}{
		{":9100", "", "127.0.0.1:9100", ""},
		{"127.0.0.1:0", "", "127.0.0.1:0", ""},
		{"[::1]:0", "", "[::1]:0", ""},
		{"0.0.0.0:9100", "", "", "not loopback"},
		{"10.0.0.1:9100", short, "", "at least 16"},
		{"0.0.0.0:9100", good, "0.0.0.0:9100", ""},
		{"nope", "", "", "--metrics-addr"},
	} {
		addr, _, err := adminOptions{addr: c.addr, tokenFile: c.file}.resolve()
		switch {
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s (token %q): err %v, want one mentioning %q", c.addr, c.file, err, c.wantErr)
		case c.wantErr == "" && (err != nil || addr != c.wantAddr):
			t.Errorf("%s: %q, %v; want %q", c.addr, addr, err, c.wantAddr)
		}
	}
}
