package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
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

// The attacks from a web page, performed against a running node: a body-less POST that a
// browser sends without preflight (Origin set), a DNS-rebound request (foreign Host), and a
// read of the command line through pprof. None of them changes the node or reveals anything;
// the operator's own tool (no Origin, loopback Host) still works.
func TestAdminAttacksOnARunningNode(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	peer, cli, admin := freePort(t), freePort(t), freePort(t)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--id", "1", "--protocol", "raft", "--peers", "1=" + peer + "/" + cli,
			"--data-dir", t.TempDir(), "--init", "--sync", "none", "--metrics-addr", admin}, &out, &errOut)
	}()
	defer func() {
		cancel()
		<-done
	}()
	base := "http://" + admin
	status := func() map[string]any {
		t.Helper()
		resp, err := http.Get(base + "/admin/status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var s map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if resp, err := http.Get(base + "/admin/status"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin never came up:\n%s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	post := func(host, origin string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/admin/partition?peers=2,3", nil)
		req.Host = host
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// A single node elects itself: /ready turns 200.
	for {
		resp, err := http.Get(base + "/ready")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("/ready: status %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := post(admin, "http://evil.example"); code != http.StatusForbidden {
		t.Errorf("POST from a web page: status %d, want 403", code)
	}
	if code := post("evil.example:80", ""); code != http.StatusForbidden {
		t.Errorf("DNS-rebound POST: status %d, want 403", code)
	}
	if p, _ := status()["partitioned"].([]any); len(p) != 0 {
		t.Fatalf("refused requests partitioned the node: %v", p)
	}
	resp, err := http.Get(base + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("pprof without --pprof: status %d, want 404", resp.StatusCode)
	}
	if code := post(admin, ""); code != http.StatusNoContent {
		t.Fatalf("the operator's POST: status %d, want 204", code)
	}
	if p, _ := status()["partitioned"].([]any); len(p) != 2 {
		t.Fatalf("the operator's partition did not take: %v", p)
	}
}

// syncBuffer is a bytes.Buffer the node's logger and the test may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A Raft node whose peers are all down knows no leader: /ready says 503 and why.
func TestReadyWithoutLeader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	admin := freePort(t)
	peers := "1=" + freePort(t) + "/" + freePort(t) + ",2=" + freePort(t) + "/" + freePort(t) + ",3=" + freePort(t) + "/" + freePort(t)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--id", "1", "--protocol", "raft", "--peers", peers,
			"--data-dir", t.TempDir(), "--init", "--sync", "none", "--metrics-addr", admin}, &out, &errOut)
	}()
	defer func() {
		cancel()
		<-done
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("/ready with no peer up: status %d, want 503", resp.StatusCode)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin never came up:\n%s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
