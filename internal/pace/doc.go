// Package pace slows background work down to a share of the wall clock, so that on a
// small, busy host a burst of it (serializing and writing a snapshot) does not take a
// whole CPU from the replica's request path for tens of milliseconds at a time.
package pace
