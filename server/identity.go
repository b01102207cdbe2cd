package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/consensusbench/consensusbench/storage"
)

// identityFileName is the file that says whose a data directory is.
const identityFileName = "identity.json"

// dataDirIdentity is stamped into a data directory when its node first starts and checked at
// every start after: a node must not run on another node's copied directory, on one of
// another cluster, or of another protocol.
type dataDirIdentity struct {
	ClusterID uint64 `json:"cluster_id"`
	NodeID    uint64 `json:"node_id"`
	Protocol  string `json:"protocol"`
	Created   string `json:"created"`
}

// checkDataDirIdentity refuses a directory stamped for another node, cluster or protocol,
// and an empty one unless init says the node is new: a voter whose data was wiped has
// forgotten the votes it cast, and rejoining as the same member it could vote twice in one
// term (Raft Figure 2 keeps currentTerm and votedFor on stable storage for this). A
// directory with data but no stamp (written before stamps existed) is stamped.
func checkDataDirIdentity(dir string, spec *ClusterSpec, id uint64, init bool, log *slog.Logger) error {
	want := dataDirIdentity{ClusterID: spec.ClusterID, NodeID: id, Protocol: spec.Protocol}
	path := filepath.Join(dir, identityFileName)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		var got dataDirIdentity
		if err := json.Unmarshal(b, &got); err != nil {
			return fmt.Errorf("server: %s is unreadable (%v): this data directory's owner is unknown", path, err)
		}
		if got.ClusterID != want.ClusterID || got.NodeID != want.NodeID || got.Protocol != want.Protocol {
			return fmt.Errorf("server: data directory %s belongs to node %d of %s cluster %d (stamped %s), not node %d of %s cluster %d: refusing to start on another node's data",
				dir, got.NodeID, got.Protocol, got.ClusterID, got.Created, id, want.Protocol, want.ClusterID)
		}
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("server: %w", err)
	}
	hasData := false
	for _, sub := range []string{"wal", "snap"} {
		if ents, err := os.ReadDir(filepath.Join(dir, sub)); err == nil && len(ents) > 0 {
			hasData = true
		}
	}
	switch {
	case hasData:
		log.Warn("data directory has no identity stamp (written before stamps existed): stamping it", "dir", dir)
	case !init:
		return fmt.Errorf("server: data directory %s holds no state: start a new node with --init (ReplicaConfig.Init); a node whose data was lost must not rejoin as the same member, since it may have voted in a term it no longer remembers", dir)
	}
	want.Created = time.Now().UTC().Format(time.RFC3339)
	out, err := json.Marshal(want)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if _, err := f.Write(out); err != nil {
		f.Close()
		return fmt.Errorf("server: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("server: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	defer d.Close()
	return d.Sync()
}

// walDamageWhy explains a WAL tail recovery dropped, for the log line an operator reads.
func walDamageWhy(policy storage.SyncPolicy, st storage.State) string {
	if st.DroppedSegments > 0 {
		return "a record failed its checksum in a segment written without fdatasync (--sync none): nothing after it can be trusted, so the later segments went too; a crash of the machine, or a damaged disk, does this"
	}
	if policy == storage.SyncNone {
		return "the last batch was written without fdatasync (--sync none) and did not fully reach the disk"
	}
	return "the last batch never completed its fdatasync, so it was never acknowledged"
}
