// Command alloc allocates and touches the number of MiB given as its
// argument, then prints the VmLck and VmRSS lines of its /proc/self/status
// and the Rss and Locked lines of /proc/self/smaps_rollup (the resident
// memory, and how much of it is in locked mappings).
// Tests build it with CGO_ENABLED=0, so it is a static binary.
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

func main() {
	mib := 50
	if len(os.Args) > 1 {
		mib, _ = strconv.Atoi(os.Args[1])
	}
	b := make([]byte, mib<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	grep("/proc/self/status", "VmLck:", "VmRSS:")
	grep("/proc/self/smaps_rollup", "Rss:", "Locked:")
	runtime.KeepAlive(b)
}

func grep(path string, prefixes ...string) {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for _, p := range prefixes {
			if l := sc.Text(); strings.HasPrefix(l, p) {
				fmt.Println(l)
			}
		}
	}
}
