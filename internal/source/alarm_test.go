package source

import (
	"testing"
	"time"
)

// An Alarm goes off once per Set, no sooner than asked; a new Set replaces
// the old one, pending expiry included; Close ends it.
func TestAlarm(t *testing.T) {
	a, err := NewAlarm()
	if err != nil {
		t.Fatal(err)
	}
	set := func(d time.Duration) {
		t.Helper()
		if err := a.Set(d); err != nil {
			t.Fatal(err)
		}
	}
	// goesOff sets the alarm to d and waits for it, at least d.
	goesOff := func(d time.Duration) {
		t.Helper()
		start := time.Now()
		set(d)
		select {
		case <-a.C():
			if got := time.Since(start); got < d {
				t.Errorf("set for %v, went off after %v", d, got)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("set for %v, did not go off in 5s", d)
		}
	}
	quiet := func(why string) {
		t.Helper()
		select {
		case <-a.C():
			t.Fatal(why)
		case <-time.After(150 * time.Millisecond):
		}
	}
	goesOff(50 * time.Millisecond)
	quiet("went off twice for one Set")
	// A later Set replaces an earlier one.
	set(time.Hour)
	goesOff(20 * time.Millisecond)
	// ...and drops its expiry if nobody received it yet.
	set(time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	set(time.Hour)
	quiet("an expiry of a replaced setting was delivered")
	// Zero and negative durations go off at once rather than disarming.
	goesOff(0)
	goesOff(-time.Second)
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
