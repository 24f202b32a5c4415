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
