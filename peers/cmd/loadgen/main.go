package main

import (
	"fmt"
	"os"

	"github.com/consensusbench/consensusbench/cmd/loadgen/cli"

	_ "github.com/consensusbench/consensusbench/peers/etcd" // registers --system etcd
)

func main() {
	if err := cli.Main(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: "+err.Error())
		os.Exit(cli.ExitStatus(err))
	}
}
