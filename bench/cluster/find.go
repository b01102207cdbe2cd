package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Module is the Go module whose cmd/node FindNode may build.
const Module = "github.com/consensusbench/consensusbench"

const (
	// nodeBinName is the node executable's file name.
	nodeBinName = "node"
	// nodeHelpMarker identifies consensusbench's node in `node --help` output, so that an
	// unrelated "node" on PATH (Node.js) is not mistaken for it.
	nodeHelpMarker = "replica of a consensusbench cluster"
	// checkTimeout bounds running `node --help` on a candidate.
	checkTimeout = 5 * time.Second
	// buildTimeout bounds `go build ./cmd/node`.
	buildTimeout = 5 * time.Minute
)

// FindNode returns the path of a consensusbench node binary, looking in this order:
//
//  1. beside the running executable (bin/node next to bin/loadgen, as `make build` lays
//     them out);
//  2. on PATH, if `node --help` says it is consensusbench's node;
//  3. built with `go build -o buildDir/node ./cmd/node` when the working directory is inside
//     the consensusbench module (go run, go test), with the go command on PATH.
//
// The error lists what each step found.
func FindNode(ctx context.Context, buildDir string) (string, error) {
	var tried []string
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), nodeBinName)
		if ok, why := isNode(ctx, p); ok {
			return p, nil
		} else {
			tried = append(tried, fmt.Sprintf("beside the executable: %s: %s", p, why))
		}
	}
	if p, err := exec.LookPath(nodeBinName); err == nil {
		if ok, why := isNode(ctx, p); ok {
			return p, nil
		} else {
			tried = append(tried, fmt.Sprintf("on PATH: %s: %s", p, why))
		}
	} else {
		tried = append(tried, "on PATH: none")
	}
	root, err := moduleRoot()
	if err != nil {
		tried = append(tried, "build: "+err.Error())
		return "", fmt.Errorf("cluster: no node binary (run `make build`, or run from the consensusbench checkout):\n  %s",
			strings.Join(tried, "\n  "))
	}
	p, err := BuildNode(ctx, root, buildDir)
	if err != nil {
		tried = append(tried, "build: "+err.Error())
		return "", fmt.Errorf("cluster: no node binary:\n  %s", strings.Join(tried, "\n  "))
	}
	return p, nil
}

// BuildNode builds root/cmd/node into dir and returns the binary's path.
func BuildNode(ctx context.Context, root, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, nodeBinName)
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/node")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/node in %s: %v\n%s", root, err, b)
	}
	return out, nil
}

// isNode reports whether p is an executable consensusbench node, and if not, why.
func isNode(ctx context.Context, p string) (bool, string) {
	st, err := os.Stat(p)
	if err != nil {
		return false, "absent"
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return false, "not an executable file"
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	// --help prints the usage and exits; its status does not matter, only what it says.
	out, _ := exec.CommandContext(ctx, p, "--help").CombinedOutput()
	if !bytes.Contains(out, []byte(nodeHelpMarker)) {
		return false, "not consensusbench's node (its --help does not say so)"
	}
	return true, ""
}

// moduleRoot walks up from the working directory to the go.mod of Module.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "module ") {
					f.Close()
					if strings.TrimSpace(strings.TrimPrefix(line, "module ")) == Module {
						return dir, nil
					}
					return "", fmt.Errorf("the working directory is in module %s, not %s", strings.TrimPrefix(line, "module "), Module)
				}
			}
			f.Close()
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("the working directory is not inside the consensusbench module")
		}
		dir = parent
	}
}
