// Package version says which build of consensusbench is running: the module version and
// the commit the binary was built from (Go records it at build time), for the tools'
// --version and for telling results apart.
package version
