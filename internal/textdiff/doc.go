// Package textdiff shows where two texts first differ, for golden-file tests' failure
// messages (loadgen's and node's help transcripts).
package textdiff
