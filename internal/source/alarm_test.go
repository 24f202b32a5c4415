package source

import (
	"testing"
	"time"
)

// An Alarm goes off once per Set, no sooner than asked; a new Set replaces
// the old one; Close ends it.
func TestAlarm(t *testing.T) {
	a, err := NewAlarm()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := a.Set(50 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.C():
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Errorf("went off after %v, want at least 50ms", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("alarm set for 50ms did not go off in 5s")
	}
	// One-shot: nothing more without a new Set.
	select {
	case <-a.C():
		t.Fatal("went off twice for one Set")
	case <-time.After(150 * time.Millisecond):
	}
	// A later Set replaces an earlier one.
	if err := a.Set(time.Hour); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := a.Set(20 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.C():
		if d := time.Since(start); d < 20*time.Millisecond {
			t.Errorf("went off after %v, want at least 20ms", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the replacing Set did not go off in 5s")
	}
	// Zero and negative durations go off at once rather than disarming.
	if err := a.Set(0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.C():
	case <-time.After(5 * time.Second):
		t.Fatal("Set(0) did not go off")
	}
	done := make(chan error, 1)
	go func() { done <- a.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
}
