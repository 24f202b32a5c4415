// Package killlatency measures, on the real kernel, the time from a memory
// hog passing 95 % of its cgroup's limit to the memory being released, for
// the kernel's memcg OOM killer and for oomguard's event-driven path with
// and without process_mrelease. Run it with
//
//	go test ./bench/killlatency -run TestKillLatency -count=1 -v -args -write
//
// which rewrites docs/benchmarks/killlatency.md.
package killlatency
