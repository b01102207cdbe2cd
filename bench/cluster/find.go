package cluster

import (
	"bufio"
	"bytes"
	"context"
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
	// checkTimeout bounds running `<binary> --help` on a candidate.
	checkTimeout = 5 * time.Second
	// nodeBuildTimeout bounds `go build ./cmd/node`.
	nodeBuildTimeout = 5 * time.Minute
)

// Binary is an executable FindBinary looks for: consensusbench's node, or another system's
// member launcher that bench/cluster runs through Config.Command.
type Binary struct {
	Name string // file name (node, etcd-member)
	// HelpMarker is text its --help prints, so that an unrelated program of the same name
	// on PATH (Node.js's node) is not taken for it.
	HelpMarker string
	Module     string        // the Go module holding Package
	Package    string        // its main package, relative to the module root ("./cmd/node")
	Build      time.Duration // bound on building it
	MakeTarget string        // the make target that puts it beside the running executable
}

// NodeBinary is consensusbench's node.
var NodeBinary = Binary{Name: "node", HelpMarker: "replica of a consensusbench cluster", Module: Module,
	Package: "./cmd/node", Build: nodeBuildTimeout, MakeTarget: "make build"}

// FindNode returns the path of a consensusbench node binary (FindBinary of NodeBinary).
func FindNode(ctx context.Context, buildDir string) (string, error) {
	p, err := FindBinary(ctx, NodeBinary, buildDir)
	if err != nil {
		return "", fmt.Errorf("cluster: %w", err)
	}
	return p, nil
}

// FindBinary returns the path of b, looking in this order:
//
//  1. beside the running executable (bin/node next to bin/loadgen, as `make build` lays
//     them out);
//  2. on PATH, if its --help says it is b;
//  3. built with `go build -o buildDir/<name> <package>` when the working directory is
//     inside b's module (go run, go test), with the go command on PATH.
//
// The error lists what each step found.
func FindBinary(ctx context.Context, b Binary, buildDir string) (string, error) {
	var tried []string
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), b.Name)
		if ok, why := b.check(ctx, p); ok {
			return p, nil
		} else {
			tried = append(tried, fmt.Sprintf("beside the executable: %s: %s", p, why))
		}
	}
	if p, err := exec.LookPath(b.Name); err == nil {
		if ok, why := b.check(ctx, p); ok {
			return p, nil
		} else {
			tried = append(tried, fmt.Sprintf("on PATH: %s: %s", p, why))
		}
	} else {
		tried = append(tried, "on PATH: none")
	}
	root, err := moduleRootOf(b.Module)
	if err == nil {
		var p string
		if p, err = b.build(ctx, root, buildDir); err == nil {
			return p, nil
		}
	}
	tried = append(tried, "build: "+err.Error())
	return "", fmt.Errorf("no %s binary (run `%s`, or run from a checkout of %s):\n  %s",
		b.Name, b.MakeTarget, b.Module, strings.Join(tried, "\n  "))
}

// BuildNode builds root/cmd/node into dir and returns the binary's path.
func BuildNode(ctx context.Context, root, dir string) (string, error) {
	return NodeBinary.build(ctx, root, dir)
}

// build builds b from its module at root into dir and returns the binary's path.
func (b Binary) build(ctx context.Context, root, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, b.Name)
	ctx, cancel := context.WithTimeout(ctx, b.Build)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, b.Package)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s in %s: %v\n%s", b.Package, root, err, out)
	}
	return out, nil
}

// isNode reports whether p is an executable consensusbench node, and if not, why.
func isNode(ctx context.Context, p string) (bool, string) { return NodeBinary.check(ctx, p) }

// check reports whether p is an executable that says it is b, and if not, why.
func (b Binary) check(ctx context.Context, p string) (bool, string) {
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
	if !bytes.Contains(out, []byte(b.HelpMarker)) {
		return false, fmt.Sprintf("not consensusbench's %s (its --help does not say so)", b.Name)
	}
	return true, ""
}

// moduleRoot walks up from the working directory to the go.mod of Module.
func moduleRoot() (string, error) { return moduleRootOf(Module) }

// moduleRootOf walks up from the working directory to the nearest go.mod and returns its
// directory when it declares module.
func moduleRootOf(module string) (string, error) {
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
					if strings.TrimSpace(strings.TrimPrefix(line, "module ")) == module {
						return dir, nil
					}
					return "", fmt.Errorf("the working directory is in module %s, not %s", strings.TrimPrefix(line, "module "), module)
				}
			}
			f.Close()
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("the working directory is not inside module %s", module)
		}
		dir = parent
	}
}
