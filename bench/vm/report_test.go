package main

import "testing"

func TestPool(t *testing.T) {
	xs := make([]float64, 200)
	for i := range xs {
		xs[i] = float64(200 - i) // 200 down to 1
	}
	got := pool(xs)
	if got.n != 200 || got.p50 != 100 || got.p99 != 198 {
		t.Errorf("pool(1..200) = %+v, want n 200, p50 100, p99 198", got)
	}
	if got := pool([]float64{7}); got.p50 != 7 || got.p99 != 7 {
		t.Errorf("pool([7]) = %+v, want 7 and 7", got)
	}
	if got := pool(nil); got.n != 0 || got.String() != "–" {
		t.Errorf("pool(nil) = %+v (%q), want empty and –", got, got.String())
	}
}

func TestKillerCPU(t *testing.T) {
	type sample = struct {
		T           int64 `json:"t"`
		AvailKB     int64 `json:"avail_kb"`
		SwapFree    int64 `json:"swap_free_kb"`
		Workload    int   `json:"workload_procs"`
		KillerCPUUs int64 `json:"killer_cpu_us"`
	}
	run := func(samples ...sample) *result { return &result{Samples: samples} }
	for _, c := range []struct {
		name string
		r    *result
		want float64
	}{
		{"steady", run(sample{T: 0, KillerCPUUs: 10_000}, sample{T: 1000, KillerCPUUs: 30_000}, sample{T: 2000, KillerCPUUs: 50_000}), 20},
		// The killer died after 1 s: its rate is over the time it lived.
		{"killer died", run(sample{T: 0, KillerCPUUs: 10_000}, sample{T: 1000, KillerCPUUs: 40_000}, sample{T: 2000}), 30},
		{"kernel alone", run(sample{T: 0}, sample{T: 1000}), -1},
		{"one sample", run(sample{T: 0, KillerCPUUs: 5}), -1},
		// A thread exited and took its time out of the sum: no rate.
		{"thread exited", run(sample{T: 0, KillerCPUUs: 50_000}, sample{T: 1000, KillerCPUUs: 20_000}), -1},
	} {
		if got := killerCPU(c.r); got != c.want {
			t.Errorf("%s: killerCPU = %v, want %v", c.name, got, c.want)
		}
	}
	if got := cpuText([]float64{4, 2.5, 30}); got != "4.0 [2.5–30.0]" {
		t.Errorf("cpuText = %q, want 4.0 [2.5–30.0]", got)
	}
	if got := cpuText(nil); got != "–" {
		t.Errorf("cpuText(nil) = %q, want –", got)
	}
}
