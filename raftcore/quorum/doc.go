// Package quorum is the majority math of Raft: the highest index a majority has
// acknowledged (Raft §5.3, §5.4) and the outcome of a vote (Raft §5.2). It owns nothing
// else; it must not allocate, so callers pass small slices and the functions sort copies
// in fixed scratch arrays.
package quorum
